// Our own Engine.IO / Socket.IO v4 protocol tests against `parley conformance` (the server
// stack of Parley with the handlers and timings of the official socket.io-protocol suite; see
// src/conformance.rs): raw packets over long-polling (fetch) and websocket (ws), and the npm
// engine.io-client / socket.io-client. e2e/run.sh starts the server and sets
// PARLEY_CONFORMANCE_URL; without it (the chat runs of `npm test`) everything is skipped.
import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import { Socket as EngineSocket } from "engine.io-client";
import { io } from "socket.io-client";
import {
  BASE, CONNECT_TIMEOUT, MAX_PAYLOAD, NGINX_BASE, PING_INTERVAL, PING_TIMEOUT, RawSocket, SEP,
  endpoint, joinedWebsocket, openPolling, openPollingSession, openWebsocket, poll, pollPackets, push, sleep, wsEndpoint,
} from "./conformance-lib.mjs";

const skip = !BASE && "PARLEY_CONFORMANCE_URL is not set (e2e/run.sh starts `parley conformance`)";
const HANDSHAKE_KEYS = ["maxPayload", "pingInterval", "pingTimeout", "sid", "upgrades"];
const placeholder = (num) => ({ _placeholder: true, num });
/** Allowed lateness of a server timer (CI machines are slow, never early). */
const SLACK = 400;

/** Clients a failed test may have left open; closed when the file is done. */
const clients = new Set();
after(() => {
  RawSocket.closeAll();
  for (const c of clients) c.close();
});

/** A socket.io-client socket on `nsp`, resolved once connected with the `auth` event's payload. */
async function client(nsp, options = {}) {
  const socket = io(`${BASE}${nsp}`, { reconnection: false, forceNew: true, ...options });
  clients.add(socket);
  const auth = new Promise((resolve) => socket.once("auth", resolve));
  await new Promise((resolve, reject) => {
    socket.once("connect", resolve);
    socket.once("connect_error", reject);
  });
  return { socket, auth: await auth };
}

function once(emitter, event, ms = 3000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${event} within ${ms} ms`)), ms);
    emitter.once(event, (...args) => (clearTimeout(timer), resolve(args)));
  });
}

describe("Engine.IO handshake", { skip }, () => {
  it("over long-polling: sid, upgrades [websocket], pingInterval 300, pingTimeout 200, maxPayload 1e6", async () => {
    const first = await openPolling();
    const second = await openPolling();
    const { response, ...handshake } = first;
    assert.deepEqual(Object.keys(handshake).sort(), HANDSHAKE_KEYS);
    assert.equal(typeof handshake.sid, "string");
    assert.notEqual(handshake.sid, second.sid);
    assert.deepEqual(handshake.upgrades, ["websocket"]);
    assert.equal(handshake.pingInterval, PING_INTERVAL);
    assert.equal(handshake.pingTimeout, PING_TIMEOUT);
    assert.equal(handshake.maxPayload, MAX_PAYLOAD);
    assert.match(response.headers.get("content-type"), /^text\/plain/);
  });

  it("over websocket: the first frame is the handshake, with no further upgrade offered", async () => {
    const { socket, handshake } = await openWebsocket();
    assert.deepEqual(Object.keys(handshake).sort(), HANDSHAKE_KEYS);
    assert.equal(typeof handshake.sid, "string");
    assert.deepEqual(handshake.upgrades, []);
    assert.equal(handshake.pingInterval, PING_INTERVAL);
    assert.equal(handshake.pingTimeout, PING_TIMEOUT);
    assert.equal(handshake.maxPayload, MAX_PAYLOAD);
    socket.close();
  });

  it("a missing or invalid EIO, a missing or unknown transport, or a wrong method is a 400", async () => {
    const cases = [
      ["transport=polling", "GET"],
      ["EIO=abc&transport=polling", "GET"],
      ["EIO=4", "GET"],
      ["EIO=4&transport=abc", "GET"],
      ["EIO=4&transport=polling", "POST"], // a POST needs a session
      ["EIO=4&transport=polling", "PUT"],
    ];
    for (const [query, method] of cases) {
      const response = await fetch(endpoint(query), { method, body: method === "GET" ? undefined : "1" });
      assert.equal(response.status, 400, `${method} ?${query}`);
    }
    for (const query of ["transport=websocket", "EIO=abc&transport=websocket", "EIO=4", "EIO=4&transport=abc"]) {
      const socket = new RawSocket(wsEndpoint(query));
      await assert.rejects(socket.opened, (err) => err.status === 400, `websocket ?${query}`);
    }
  });

  it("an unknown sid is a 400 'Session ID unknown'", async () => {
    const response = await fetch(endpoint("EIO=4&transport=polling&sid=notasession"));
    assert.equal(response.status, 400);
    const body = await response.json();
    assert.equal(String(body.code), "1");
    assert.equal(body.message, "Session ID unknown");
  });

  it("CORS: any origin, as the suite's reference server (`cors: { origin: \"*\" }`)", async () => {
    for (const origin of ["http://localhost:5173", "http://elsewhere.example", "null"]) {
      const { response } = await openPolling(BASE, { origin });
      assert.equal(response.headers.get("access-control-allow-origin"), "*", origin);
    }
  });
});

describe("Engine.IO heartbeat", { skip }, () => {
  // engineioxide alone would send the first PING right after the handshake; Parley answers
  // that one itself (src/transport/first_ping.rs), so clients see it pingInterval later.
  it("websocket: the first ping comes pingInterval after the handshake, after the CONNECT reply and auth", async () => {
    // Pings are kept in the queue: one before the CONNECT reply would fail the test.
    const socket = new RawSocket(wsEndpoint("EIO=4&transport=websocket"), { keepPings: true });
    await socket.next(); // handshake
    const handshakeAt = Date.now();
    socket.send("40");
    const [connected, auth] = await socket.take(2);
    assert.match(connected, /^40\{"sid":"[^"]+"\}$/);
    assert.equal(auth, '42["auth",{}]');
    assert.equal(await socket.next(), "2");
    const first = Date.now() - handshakeAt;
    assert.ok(first >= PING_INTERVAL - 20 && first <= PING_INTERVAL + SLACK, `first ping ${first} ms after the handshake`);
    socket.send("3");
    const firstAt = Date.now();
    assert.equal(await socket.next(), "2");
    const second = Date.now() - firstAt;
    assert.ok(second >= PING_INTERVAL - 50 && second <= PING_INTERVAL + SLACK, `second ping ${second} ms after the first`);
    socket.close();
  });

  it("long-polling: the first poll waits pingInterval for the first ping", async () => {
    const { sid } = await openPolling();
    const openedAt = Date.now();
    const { status, body } = await poll(sid);
    const first = Date.now() - openedAt;
    assert.equal(status, 200);
    assert.equal(body, "2");
    assert.ok(first >= PING_INTERVAL - 20 && first <= PING_INTERVAL + SLACK, `first ping ${first} ms after the handshake`);
    assert.deepEqual(await push(sid, "3"), { status: 200, body: "ok" });
  });

  it("long-polling: pings every ~pingInterval, each pong keeps the session", async () => {
    const { sid } = await openPolling();
    let previous;
    // Three rounds end at ~3 × pingInterval, before the connect timeout (no namespace joined).
    for (let i = 0; i < 3; i++) {
      const { status, body } = await poll(sid);
      const now = Date.now();
      assert.equal(status, 200);
      assert.equal(body, "2");
      if (previous !== undefined) {
        const gap = now - previous;
        assert.ok(gap >= PING_INTERVAL - 50 && gap <= PING_INTERVAL + SLACK, `ping ${i} after ${gap} ms`);
      }
      previous = now;
      assert.deepEqual(await push(sid, "3"), { status: 200, body: "ok" });
    }
  });

  it("long-polling: a session that stops ponging is gone within pingInterval + pingTimeout", async () => {
    const { sid } = await openPolling();
    await sleep(PING_INTERVAL + PING_TIMEOUT + 100);
    assert.equal((await poll(sid)).status, 400);
  });

  it("websocket: pings every ~pingInterval, and a ponging client stays connected", async () => {
    const socket = await joinedWebsocket("/");
    await sleep(4 * PING_INTERVAL + 100);
    assert.ok(socket.pings.length >= 4, `${socket.pings.length} pings`);
    const gaps = socket.pings.slice(1).map((t, i) => t - socket.pings[i]);
    for (const gap of gaps) assert.ok(gap >= PING_INTERVAL - 50 && gap <= PING_INTERVAL + SLACK, `gap ${gap} ms`);
    assert.equal(socket.closedAt, undefined);
    socket.ws.send('42["message","alive"]');
    assert.equal(await socket.next(), '42["message-back","alive"]');
    socket.close();
  });

  it("websocket: a client that stops ponging is closed ~pingInterval + pingTimeout after its last pong", async () => {
    const socket = new RawSocket(wsEndpoint("EIO=4&transport=websocket"), { pong: 2 });
    await socket.next(); // handshake
    socket.send("40"); // joined, so the connect timeout plays no part
    await socket.take(2);
    await socket.closedWithin(3 * PING_INTERVAL + PING_TIMEOUT + SLACK + 500);
    assert.equal(socket.pongs.length, 2);
    assert.equal(socket.pings.length, 3, "closed after the first unanswered ping");
    const afterLastPong = socket.closedAt - socket.pongs[1];
    assert.ok(
      afterLastPong >= PING_INTERVAL + PING_TIMEOUT - 50 && afterLastPong <= PING_INTERVAL + PING_TIMEOUT + SLACK,
      `closed ${afterLastPong} ms after the last pong`,
    );
    const afterPing = socket.closedAt - socket.pings[2];
    assert.ok(afterPing >= PING_TIMEOUT - 50, `closed ${afterPing} ms after the unanswered ping`);
  });
});

describe("Engine.IO close and upgrade", { skip }, () => {
  it("long-polling: a close packet ends the pending poll with a noop and the session", async () => {
    // The poll must be pending when the close arrives, and nothing on the wire says that it
    // is. A round in which the close got there first is recognisable (the poll then finds no
    // session: 400) and proves nothing, so it is run again; any other answer is the verdict.
    for (let round = 1; ; round++) {
      const { sid } = await openPollingSession();
      const pending = poll(sid);
      assert.equal((await push(sid, "1")).status, 200);
      const answer = await pending;
      if (answer.status === 400 && round < 20) continue;
      assert.deepEqual(answer, { status: 200, body: "6" }, `round ${round}`);
      assert.equal((await poll(sid)).status, 400);
      break;
    }
  });

  it("websocket: a close packet closes the connection", async () => {
    const { socket } = await openWebsocket();
    socket.send("1");
    await socket.closedWithin(1000);
  });

  it("polling → websocket: 2probe/3probe, the pending poll gets a noop, 5 completes, then the websocket carries the session", async () => {
    const { sid } = await openPollingSession();
    // The noop is queued for the poll whether or not it is pending yet when 2probe arrives,
    // so the order of the two does not matter.
    const pending = poll(sid);
    const socket = new RawSocket(wsEndpoint(`EIO=4&transport=websocket&sid=${sid}`));
    await socket.opened;
    socket.send("2probe");
    assert.equal(await socket.next(), "3probe");
    assert.deepEqual(await pending, { status: 200, body: "6" });
    socket.send("5");
    socket.send('40{"via":"upgrade"}');
    const [connect, auth] = await socket.take(2);
    assert.match(connect, /^40\{"sid":"[^"]+"\}$/);
    assert.equal(auth, '42["auth",{"via":"upgrade"}]');
    // Long-polling and a second websocket on the upgraded session are refused.
    assert.equal((await poll(sid)).status, 400);
    const second = new RawSocket(wsEndpoint(`EIO=4&transport=websocket&sid=${sid}`));
    const refused = await second.opened.then(
      () => second.closedWithin(1500).then(() => "closed", () => "kept open"),
      (err) => `HTTP ${err.status}`,
    );
    assert.notEqual(refused, "kept open", "a second websocket for the upgraded sid was accepted");
    socket.close();
  });

  it("engine.io-client opens with polling and upgrades to websocket on its own", async () => {
    const socket = new EngineSocket(BASE, { path: "/socket.io/", transports: ["polling", "websocket"] });
    clients.add(socket);
    const [transport] = await once(socket, "upgrade");
    assert.equal(transport.name, "websocket");
    assert.equal(socket.transport.name, "websocket");
    const received = once(socket, "message");
    socket.send("0"); // a Socket.IO CONNECT; engine.io-client adds the Engine.IO "4" (message)
    const [connect] = await received;
    assert.match(connect, /^0\{"sid":/);
    socket.close();
  });

  it("nginx (nginx/parley.conf's /socket.io/ block) passes the probe and the upgrade", { skip: !NGINX_BASE && "nginx not available (PARLEY_CONFORMANCE_NGINX_URL unset)" }, async () => {
    const { sid } = await openPolling(NGINX_BASE);
    const socket = new RawSocket(wsEndpoint(`EIO=4&transport=websocket&sid=${sid}`, NGINX_BASE));
    await socket.opened;
    socket.send("2probe");
    assert.equal(await socket.next(), "3probe");
    socket.send("5");
    socket.send("40/custom,");
    const [connect, auth] = await socket.take(2);
    assert.match(connect, /^40\/custom,\{"sid":/);
    assert.equal(auth, '42/custom,["auth",{}]');
    socket.send('42/custom,["message","through nginx"]');
    assert.equal(await socket.next(), '42/custom,["message-back","through nginx"]');
    socket.close();
    // socket.io-client through nginx, upgrading by itself.
    const sio = io(`${NGINX_BASE}/custom`, { reconnection: false, forceNew: true, auth: { n: 1 } });
    clients.add(sio);
    const upgraded = once(sio.io.engine, "upgrade"); // the manager opened its engine already
    const [auth2] = await once(sio, "auth");
    assert.deepEqual(auth2, { n: 1 });
    await upgraded;
    assert.equal(sio.io.engine.transport.name, "websocket");
    const back = once(sio, "message-back");
    sio.emit("message", Buffer.from([9]), "after the upgrade");
    const [buf, text] = await back;
    assert.deepEqual([[...buf], text], [[9], "after the upgrade"]);
    sio.close();
  });
});

describe("Engine.IO framing", { skip }, () => {
  it("several packets in one long-polling payload, both ways, separated by \\x1e", async () => {
    const { sid } = await openPollingSession();
    // CONNECT on its own: socketioxide closes the session when an event for the namespace is
    // processed before the CONNECT completed (see docs/websocket-protocol.md).
    assert.equal((await push(sid, "40")).status, 200);
    const joined = await pollPackets(sid, 2);
    assert.match(joined.packets[0], /^40\{"sid":"[^"]+"\}$/);
    assert.equal(joined.packets[1], '42["auth",{}]');
    // Replies waiting together go out in one payload; when they do depends on the handlers'
    // tasks, so rounds are sent until one of them shows it (no waiting between them).
    const seen = [...joined.payloads];
    for (let round = 1; round <= 20 && !seen.some((p) => p.includes(SEP)); round++) {
      assert.equal((await push(sid, ['42["message",1]', '42["message","two"]', '42["message",{"3":[]}]'].join(SEP))).status, 200);
      const { packets, payloads } = await pollPackets(sid, 3);
      // socketioxide runs each event's handler in a task of its own, so under load the replies
      // may leave in another order than the events came (docs/websocket-protocol.md §18).
      assert.deepEqual(packets.sort(), ['42["message-back",1]', '42["message-back","two"]', '42["message-back",{"3":[]}]'].sort());
      seen.push(...payloads);
    }
    assert.ok(seen.some((p) => p.includes(SEP)), `one payload per packet: ${JSON.stringify(seen)}`);
  });

  it("binary attachments over long-polling travel base64-encoded as 'b' packets", async () => {
    const { sid } = await openPollingSession();
    await push(sid, "40");
    await pollPackets(sid, 2);
    const attachment = Buffer.from([1, 2, 3, 255]).toString("base64");
    await push(sid, [`451-["message",${JSON.stringify(placeholder(0))}]`, `b${attachment}`].join(SEP));
    const { packets } = await pollPackets(sid, 2);
    assert.deepEqual(packets, [`451-["message-back",${JSON.stringify(placeholder(0))}]`, `b${attachment}`]);
  });
});

describe("Socket.IO connect", { skip }, () => {
  it("CONNECT to / without auth: 40{sid}, then auth {}", async () => {
    const { socket, handshake } = await openWebsocket();
    socket.send("40");
    const [connect, auth] = await socket.take(2);
    const reply = JSON.parse(connect.slice(2));
    assert.deepEqual(Object.keys(reply), ["sid"]);
    assert.equal(typeof reply.sid, "string");
    assert.ok(handshake.sid);
    assert.equal(auth, '42["auth",{}]');
    socket.close();
  });

  it("CONNECT to / and /custom with auth, on one connection", async () => {
    const { socket } = await openWebsocket();
    socket.send('40{"token":"123"}');
    const [connect, auth] = await socket.take(2);
    assert.match(connect, /^40\{"sid":"[^"]+"\}$/);
    assert.equal(auth, '42["auth",{"token":"123"}]');
    socket.send('40/custom,{"token":"abc","n":[1,2]}');
    const [connect2, auth2] = await socket.take(2);
    assert.match(connect2, /^40\/custom,\{"sid":"[^"]+"\}$/);
    assert.equal(auth2, '42/custom,["auth",{"token":"abc","n":[1,2]}]');
    socket.close();
  });

  it("an unknown namespace is a CONNECT_ERROR, and the connection stays usable", async () => {
    const { socket } = await openWebsocket();
    socket.send("40/random,");
    assert.equal(await socket.next(), '44/random,{"message":"Invalid namespace"}');
    socket.send("40/custom,");
    assert.match(await socket.next(), /^40\/custom,/);
    socket.close();
    const sio = io(`${BASE}/random`, { reconnection: false, forceNew: true });
    clients.add(sio);
    const [err] = await once(sio, "connect_error");
    assert.equal(err.message, "Invalid namespace");
    sio.close();
  });

  it("connect timeout: an Engine.IO session that joins no namespace is closed after ~1000 ms", async () => {
    const started = Date.now();
    const { socket } = await openWebsocket(); // answers pings, so only the connect timeout applies
    await socket.closedWithin(CONNECT_TIMEOUT + SLACK + 500);
    const elapsed = socket.closedAt - started;
    assert.ok(elapsed >= CONNECT_TIMEOUT - 50, `closed after ${elapsed} ms`);
    assert.ok(socket.pings.length >= 2, "the session was alive (ponging) until the timeout");
  });

  it("connect timeout over long-polling: the session is gone after ~1000 ms without CONNECT", async () => {
    const { sid } = await openPolling();
    const started = Date.now();
    let status = 200;
    while (status === 200 && Date.now() - started < CONNECT_TIMEOUT + SLACK + 1000) {
      const reply = await poll(sid);
      status = reply.status;
      if (status === 200 && reply.body.split(SEP).includes("2")) await push(sid, "3");
    }
    assert.equal(status, 400);
    assert.ok(Date.now() - started >= CONNECT_TIMEOUT - 50);
  });

  it("DISCONNECT from /custom keeps / connected", async () => {
    const socket = await joinedWebsocket("/");
    socket.send("40/custom,");
    await socket.take(2);
    socket.send("41/custom,");
    socket.send('42["message","still here"]');
    assert.equal(await socket.next(), '42["message-back","still here"]');
    socket.close();
  });

  // The reference server ignores a packet for a namespace the client is not connected to;
  // socketioxide (ns.recv → SocketGone) closes the whole Engine.IO connection. Pinned so a change
  // is noticed; see docs/websocket-protocol.md.
  it("known deviation: an event for a namespace the client left closes the connection", async () => {
    const socket = await joinedWebsocket("/");
    socket.send("40/custom,");
    await socket.take(2);
    socket.send("41/custom,");
    socket.send('42/custom,["message","to a namespace left"]');
    await socket.closedWithin(1000);
  });
});

describe("Socket.IO events and acks", { skip }, () => {
  it("message is echoed as message-back with every argument", async () => {
    for (const nsp of ["/", "/custom"]) {
      const socket = await joinedWebsocket(nsp);
      const prefix = nsp === "/" ? "" : `${nsp},`;
      socket.send(`42${prefix}["message",1,"2",{"3":[true,null,-1.5]},[]]`);
      assert.equal(await socket.next(), `42${prefix}["message-back",1,"2",{"3":[true,null,-1.5]},[]]`);
      socket.send(`42${prefix}["message"]`);
      assert.equal(await socket.next(), `42${prefix}["message-back"]`);
      socket.close();
    }
  });

  it("message-with-ack is acknowledged with its arguments, under the client's ack id", async () => {
    const socket = await joinedWebsocket("/custom");
    socket.send('42/custom,456["message-with-ack",1,"2",{"3":[false]}]');
    assert.equal(await socket.next(), '43/custom,456[1,"2",{"3":[false]}]');
    socket.close();
  });

  it("binary attachments over websocket are echoed as BINARY_EVENT / BINARY_ACK (452-… / 462-…) with their frames", async () => {
    const socket = await joinedWebsocket("/");
    const ph = `${JSON.stringify(placeholder(0))},{"nested":${JSON.stringify(placeholder(1))}}`;
    socket.send(`452-["message",${ph},"text"]`);
    socket.send(Buffer.from([1, 2, 3]));
    socket.send(Buffer.from([4, 5, 6]));
    const [event, first, second] = await socket.take(3);
    assert.equal(event, `452-["message-back",${ph},"text"]`);
    assert.deepEqual([...first], [1, 2, 3]);
    assert.deepEqual([...second], [4, 5, 6]);
    socket.send(`452-789["message-with-ack",${ph}]`);
    socket.send(Buffer.from([7]));
    socket.send(Buffer.from([8, 9]));
    const [ack, a, b] = await socket.take(3);
    assert.equal(ack, `462-789[${ph}]`);
    assert.deepEqual([[...a], [...b]], [[7], [8, 9]]);
    socket.close();
  });

  it("server → client ack (raw): ask makes the server emit question with an ack id, the ack comes back as answer", async () => {
    const socket = await joinedWebsocket("/");
    socket.send('42["ask",1,{"two":2}]');
    const question = await socket.next();
    const match = /^42(\d+)\["question",1,\{"two":2\}\]$/.exec(question);
    assert.ok(match, question);
    socket.send(`43${match[1]}["yes",3]`);
    assert.equal(await socket.next(), '42["answer","yes",3]');
    socket.close();
  });

  for (const transport of ["websocket", "polling"]) {
    it(`socket.io-client over ${transport}: events, acks both ways and binary`, async () => {
      const { socket, auth } = await client("/custom", { transports: [transport], auth: { token: transport } });
      assert.deepEqual(auth, { token: transport });

      const back = once(socket, "message-back");
      socket.emit("message", "a", 2, { b: [true] });
      assert.deepEqual(await back, ["a", 2, { b: [true] }]);

      const acked = await new Promise((resolve) => socket.emit("message-with-ack", 1, "x", (...args) => resolve(args)));
      assert.deepEqual(acked, [1, "x"]);

      const binary = once(socket, "message-back");
      socket.emit("message", Buffer.from([1, 2]), { deep: [Buffer.from([3])] });
      const [buf, obj] = await binary;
      assert.deepEqual([...buf], [1, 2]);
      assert.deepEqual([...obj.deep[0]], [3]);

      socket.once("question", (n, callback) => callback(n + 1, "ok"));
      const answer = once(socket, "answer");
      socket.emit("ask", 41);
      assert.deepEqual(await answer, [42, "ok"]);
      socket.close();
    });
  }

  it("server → client ack left unanswered: the server gives up after its ack timeout", async () => {
    const { socket } = await client("/", { transports: ["websocket"] });
    socket.once("question", () => {}); // never calls back
    const answer = once(socket, "answer", 3000);
    socket.emit("ask", "hello?");
    const [reply] = await answer;
    assert.equal(typeof reply.error, "string");
    socket.close();
  });
});

describe("Malformed and oversize input", { skip }, () => {
  for (const [what, packet] of [
    ["an unknown packet type", "4abc"],
    ["an event whose payload is not an array", "42{}"],
    ["an invalid ack id", '42abc["message-with-ack",1]'],
  ]) {
    it(`${what} closes the connection`, async () => {
      const socket = await joinedWebsocket("/");
      socket.send(packet);
      await socket.closedWithin(1000);
    });
  }

  it("websocket: a message just under maxPayload is echoed, one over it closes the connection", async () => {
    const socket = await joinedWebsocket("/");
    const frame = (size) => {
      const head = '42["message","';
      return head + "x".repeat(size - head.length - 2) + '"]';
    };
    socket.send(frame(MAX_PAYLOAD - 1000));
    const echo = await socket.next(5000);
    assert.equal(echo.length, MAX_PAYLOAD - 1000 + "-back".length);
    socket.send(frame(MAX_PAYLOAD + 1));
    const { code } = await socket.closedWithin(2000);
    // The reference server (ws) closes with 1009 "message too big"; socketioxide (tungstenite)
    // drops the connection with a close frame carrying no code (1005). Either way it is closed.
    assert.ok([1005, 1009].includes(code), `close code ${code}`);
  });

  it("long-polling: a POST over maxPayload is a 413 and ends the session", async () => {
    const { sid } = await openPollingSession();
    await push(sid, "40");
    const ok = await push(sid, '42["message","' + "y".repeat(MAX_PAYLOAD / 2) + '"]');
    assert.equal(ok.status, 200);
    const tooBig = await push(sid, '42["message","' + "z".repeat(MAX_PAYLOAD) + '"]');
    assert.equal(tooBig.status, 413);
    // The session ends with the 413; a poll may still collect what was waiting for it (the
    // first message's echo), and the next one finds no session.
    let answer = await poll(sid);
    for (let polls = 1; answer.status === 200 && polls < 3; polls++) answer = await poll(sid);
    assert.equal(answer.status, 400, JSON.stringify(answer));
  });
});
