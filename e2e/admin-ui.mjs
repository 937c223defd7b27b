// The Socket.IO Admin UI's protocol on /admin, with the npm socket.io-client as the UI uses
// it: the login, `config`, `server_stats`, `all_sockets`, the live socket and room events,
// and the operations. Run by run.sh against servers started with ADMIN_UI=true:
//   ADMIN_EXPECT=operations: ADMIN_UI_READONLY=false, credentials ADMIN_USER / ADMIN_PASSWORD;
//   ADMIN_EXPECT=readonly: the default ADMIN_UI_READONLY=true, same credentials;
//   ADMIN_EXPECT=open: ADMIN_UI_AUTH=false (no login, development only);
//   ADMIN_EXPECT=production: ADMIN_UI_MODE=production (statistics only), same credentials.
import { test } from "node:test";
import assert from "node:assert/strict";
import { io } from "socket.io-client";

import { BASE, WAIT_MS, api, connect, emitWithAck, register, waitFor } from "./lib.mjs";

const USER = process.env.ADMIN_USER ?? "ops";
const PASSWORD = process.env.ADMIN_PASSWORD ?? "correct horse battery staple";
const READONLY = process.env.ADMIN_EXPECT === "readonly";
const OPEN = process.env.ADMIN_EXPECT === "open";
const PRODUCTION = process.env.ADMIN_EXPECT === "production";
// Without authentication only the open test runs; with it, the login tests; the socket
// lists and events only in development mode.
const withLogin = { skip: OPEN && "ADMIN_UI_AUTH=false" };
const development = { skip: (OPEN && "ADMIN_UI_AUTH=false") || (PRODUCTION && "production mode") };

test("without authentication (ADMIN_UI_AUTH=false) anyone connects, and gets no session", { skip: !OPEN && "authentication is on" }, async () => {
  const { socket, config, allSockets, session } = await admin({});
  assert.ok(config.supportedFeatures.includes("AGGREGATED_EVENTS"));
  assert.ok(Array.isArray(allSockets));
  // A session would come before config; the first statistics come after: the barrier.
  const stats = waitForArgs(socket, "server_stats", () => true, 4000).then(([s]) => ({ stats: s }));
  const first = await Promise.race([session.then((id) => ({ session: id })), stats]);
  assert.equal(first.session, undefined, "no session without a login");
  assert.ok(first.stats.serverId);
  socket.close();
});

/** Connects to /admin as the UI does; resolves with the socket and what came first. */
async function admin(auth) {
  const socket = io(`${BASE}/admin`, { auth, reconnection: false, forceNew: true, withCredentials: true });
  const session = new Promise((resolve) => socket.once("session", resolve));
  const config = waitFor(socket, "config");
  // Production mode sends no socket list.
  const sockets = PRODUCTION ? Promise.resolve(null) : waitFor(socket, "all_sockets");
  await waitFor(socket, "connect");
  return { socket, session, config: await config, allSockets: await sockets };
}

/** Every socket the UI is told of (socket_connected, merged with socket_updated and
 *  room_joined); `until(id, check)` resolves on the event that makes `check` true. */
function tracker(ui) {
  const views = new Map();
  const waiters = new Set();
  const changed = (id) => {
    for (const waiter of [...waiters]) {
      const view = views.get(id);
      if (waiter.id === id && view && waiter.check(view)) {
        waiters.delete(waiter);
        clearTimeout(waiter.timer);
        waiter.resolve(view);
      }
    }
  };
  ui.on("socket_connected", (socket, at) => {
    views.set(socket.id, { ...socket, rooms: [...socket.rooms], connectedAt: at });
    changed(socket.id);
  });
  ui.on("socket_updated", (update) => {
    const view = views.get(update.id);
    if (view) Object.assign(view, update);
    changed(update.id);
  });
  ui.on("room_joined", (nsp, room, id) => {
    const view = views.get(id);
    if (view && !view.rooms.includes(room)) view.rooms.push(room);
    changed(id);
  });
  return {
    until(id, check, ms = WAIT_MS) {
      const view = views.get(id);
      if (view && check(view)) return Promise.resolve(view);
      return new Promise((resolve, reject) => {
        const waiter = { id, check, resolve };
        waiter.timer = setTimeout(() => {
          waiters.delete(waiter);
          reject(new Error(`socket ${id} not shown as expected within ${ms} ms: ${JSON.stringify(views.get(id))}`));
        }, ms);
        waiters.add(waiter);
      });
    },
  };
}

/** Resolves with the connect_error message of a refused connection. */
async function refused(auth) {
  const socket = io(`${BASE}/admin`, { auth, reconnection: false, forceNew: true });
  try {
    const error = await waitFor(socket, "connect_error");
    return error.message;
  } finally {
    socket.close();
  }
}

/** Resolves with the arguments of the first `event` whose arguments pass `match`. */
function waitForArgs(socket, event, match, ms = WAIT_MS) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      socket.off(event, listener);
      reject(new Error(`no matching ${event} within ${ms} ms`));
    }, ms);
    const listener = (...args) => {
      if (!match(...args)) return;
      clearTimeout(timer);
      socket.off(event, listener);
      resolve(args);
    };
    socket.on(event, listener);
  });
}

test("no credentials, a wrong password or a forged session are refused with the UI's message", withLogin, async () => {
  assert.equal(await refused({}), "invalid credentials");
  assert.equal(await refused({ username: USER, password: "wrong" }), "invalid credentials");
  assert.equal(await refused({ username: "someone", password: PASSWORD }), "invalid credentials");
  assert.equal(await refused({ sessionId: "4102444800.00ff" }), "invalid credentials");
});

test("the login gives a session id that logs in again; config says what the UI may do", development, async () => {
  const first = await admin({ username: USER, password: PASSWORD });
  const session = await first.session;
  assert.match(session, /^\d+\.[0-9a-f]{64}$/);
  const features = READONLY
    ? ["AGGREGATED_EVENTS", "ALL_EVENTS"]
    : ["JOIN", "LEAVE", "DISCONNECT", "MJOIN", "MLEAVE", "MDISCONNECT", "AGGREGATED_EVENTS", "ALL_EVENTS"];
  assert.deepEqual(first.config, { supportedFeatures: features });
  assert.ok(Array.isArray(first.allSockets));
  first.socket.close();
  const again = await admin({ sessionId: session });
  assert.deepEqual(again.config.supportedFeatures, features);
  again.socket.close();
});

test("server_stats every 2 s: this server, its namespaces and its connections", withLogin, async () => {
  const { socket } = await admin({ username: USER, password: PASSWORD });
  try {
    // The admin socket is counted from the look after it connected (every 500 ms).
    const [stats] = await waitForArgs(socket, "server_stats", (s) => s.clientsCount >= 1, 4500);
    assert.match(stats.serverId, /#\d+$/);
    assert.equal(typeof stats.hostname, "string");
    assert.equal(typeof stats.pid, "number");
    assert.ok(stats.uptime > 0);
    assert.ok(stats.clientsCount >= 1, "the admin socket itself");
    assert.equal(typeof stats.pollingClientsCount, "number");
    assert.deepEqual(stats.namespaces.map((n) => n.name).sort(), ["/admin", "/chat"]);
    assert.ok(Array.isArray(stats.aggregatedEvents));
    for (const event of stats.aggregatedEvents) {
      assert.equal(event.timestamp % 1000, 0, "timestamps are whole seconds, in ms");
      assert.ok(["rawConnection", "rawDisconnection"].includes(event.type));
    }
  } finally {
    socket.close();
  }
});

test("a chat socket is shown with its user id, never its token; its rooms and its going are told", development, async () => {
  const { socket: ui } = await admin({ username: USER, password: PASSWORD });
  try {
    const alice = await register("AdminAlice");
    const bob = await register("AdminBob");
    const seen = tracker(ui);
    const { socket: chat } = await connect(alice.token, { query: { token: alice.token } });
    // socket.io-client forgets the id once disconnected; the events after still name it.
    const chatId = chat.id;
    // Authenticated when first seen, or told so by socket_updated and room_joined after.
    const view = await seen.until(chatId, (v) => v.data?.userId === alice.id && v.rooms.includes(`user:${alice.id}`));
    assert.equal(view.nsp, "/chat");
    assert.ok(!Number.isNaN(Date.parse(view.connectedAt)), "an ISO timestamp");
    assert.equal(view.transport, "websocket");
    assert.equal(view.clientId.length, 12);
    assert.ok(view.rooms.includes(chatId), "its own room, under its id");
    assert.ok(view.rooms.includes(`user:${alice.id}`));
    assert.deepEqual(Object.keys(view.handshake).sort(), ["address", "headers", "issued", "query", "secure", "time", "url", "xdomain"]);
    assert.ok(!Number.isNaN(new Date(view.handshake.issued).getTime()));
    assert.ok(!JSON.stringify(view).includes(alice.token), "no token anywhere");
    assert.equal(view.handshake.query.token, undefined);

    const direct = await api("/api/conversations", { method: "POST", token: alice.token, body: { type: "direct", participantIds: [bob.id] } });
    assert.ok([200, 201].includes(direct.status), JSON.stringify(direct.body));
    const room = `conversation:${direct.body.id}`;
    const joined = waitForArgs(ui, "room_joined", (nsp, r, id) => nsp === "/chat" && r === room && id === chatId);
    assert.equal((await emitWithAck(chat, "subscribe", { conversationId: direct.body.id })).ok, true);
    await joined;

    // Its events are shown (development mode) with ids kept and every other string
    // redacted: no message content, no token.
    const received = waitForArgs(ui, "event_received", (nsp, id, args) => id === chatId && args[0] === "message:send");
    const sent = waitForArgs(ui, "event_sent", (nsp, id, args) => id === chatId && args[0] === "message:sent");
    const sendAck = await emitWithAck(chat, "message:send", { conversationId: direct.body.id, content: "the secret plans", clientMessageId: crypto.randomUUID() });
    assert.equal(sendAck.ok, true, JSON.stringify(sendAck));
    const [nsp, , args, sentAt] = await received;
    assert.equal(nsp, "/chat");
    assert.ok(!Number.isNaN(Date.parse(sentAt)));
    assert.equal(args[1].conversationId, direct.body.id);
    assert.equal(args[1].content, "[redacted]");
    const [, , sentArgs] = await sent;
    assert.ok(!JSON.stringify(sentArgs).includes("secret plans"), JSON.stringify(sentArgs));
    const authShown = waitForArgs(ui, "event_received", (n, id, a) => id === chatId && a[0] === "auth");
    assert.equal((await emitWithAck(chat, "auth", { token: alice.token })).ok, true, "a token swap");
    const [, , authArgs] = await authShown;
    assert.deepEqual(authArgs, ["auth", { token: "[redacted]" }]);

    if (READONLY) {
      const answer = await ui.timeout(WAIT_MS).emitWithAck("_disconnect", "/chat", false, chatId);
      assert.equal(answer.code, "READ_ONLY");
      const join = await ui.timeout(WAIT_MS).emitWithAck("join", "/chat", "lobby", chatId);
      assert.equal(join.code, "READ_ONLY");
      // The refusal is answered after nothing was done: the chat socket is still served.
      assert.equal(chat.connected, true);
      assert.equal((await emitWithAck(chat, "unsubscribe", { conversationId: direct.body.id })).ok, true);
      chat.close();
      return;
    }

    const lobby = waitForArgs(ui, "room_joined", (nsp, r, id) => r === "lobby" && id === chatId);
    assert.deepEqual(await ui.timeout(WAIT_MS).emitWithAck("join", "/chat", "lobby", chatId), { ok: true });
    await lobby;
    const forbidden = await ui.timeout(WAIT_MS).emitWithAck("join", "/chat", `conversation:${crypto.randomUUID()}`, chatId);
    assert.equal(forbidden.code, "FORBIDDEN", "Parley's rooms are authorization");
    const keep = await ui.timeout(WAIT_MS).emitWithAck("leave", "/chat", `user:${alice.id}`, chatId);
    assert.equal(keep.code, "FORBIDDEN", "a user's room carries delivery");
    const widened = await ui.timeout(WAIT_MS).emitWithAck("_disconnect", "/chat", false, 42);
    assert.equal(widened.code, "VALIDATION_ERROR", "a filter that is not a string never means everyone");
    assert.equal(chat.connected, true);
    // The Rooms page's "clear" filters by the room itself.
    const left = waitForArgs(ui, "room_left", (nsp, r, id) => r === "lobby" && id === chatId);
    assert.deepEqual(await ui.timeout(WAIT_MS).emitWithAck("leave", "/chat", "lobby", "lobby"), { ok: true });
    await left;

    const gone = waitForArgs(ui, "socket_disconnected", (nsp, id) => nsp === "/chat" && id === chatId);
    const roomsLeft = waitForArgs(ui, "room_left", (nsp, r, id) => r === room && id === chatId);
    const kicked = waitFor(chat, "disconnect");
    assert.deepEqual(await ui.timeout(WAIT_MS).emitWithAck("_disconnect", "/chat", false, chatId), { ok: true });
    assert.equal(await kicked, "io server disconnect");
    const [, , reason, when] = await gone;
    assert.equal(reason, "server namespace disconnect");
    assert.ok(!Number.isNaN(Date.parse(when)));
    await roomsLeft;
  } finally {
    ui.close();
  }
});

test("all_sockets lists the sockets already there when the UI connects", development, async () => {
  const carol = await register("AdminCarol");
  const { socket: first } = await admin({ username: USER, password: PASSWORD });
  const seen = tracker(first);
  const { socket: chat } = await connect(carol.token);
  await seen.until(chat.id, (v) => v.data?.userId === carol.id);
  first.close();
  try {
    const later = await admin({ username: USER, password: PASSWORD });
    const listed = later.allSockets.find((s) => s.id === chat.id);
    assert.ok(listed, "the chat socket is in all_sockets");
    assert.equal(listed.nsp, "/chat");
    assert.equal(listed.data.userId, carol.id);
    later.socket.close();
  } finally {
    chat.close();
  }
});

test("a polling socket is shown as such; socket_updated tells its late authentication", development, async () => {
  const { socket: ui } = await admin({ username: USER, password: PASSWORD });
  const dave = await register("AdminDave");
  // Long-polling only, and no token until the `auth` event.
  const seen = tracker(ui);
  const chat = io(`${BASE}/chat`, { transports: ["polling"], reconnection: false, forceNew: true });
  try {
    await waitFor(chat, "connect");
    const chatId = chat.id;
    const shown = await seen.until(chatId, () => true);
    assert.equal(shown.transport, "polling");
    assert.deepEqual(shown.data, {}, "no user before authentication");
    // Told within two statistics rounds (every 2 s).
    await waitForArgs(ui, "server_stats", (s) => s.pollingClientsCount >= 1, 4500);
    const authenticated = waitForArgs(ui, "socket_updated", (u) => u.id === chatId && u.data?.userId === dave.id);
    assert.equal((await emitWithAck(chat, "auth", { token: dave.token })).ok, true);
    const [update] = await authenticated;
    assert.equal(update.nsp, "/chat");
    assert.deepEqual(Object.keys(update).sort(), ["data", "id", "nsp"]);
  } finally {
    chat.close();
    ui.close();
  }
});

test("production mode: statistics only, no socket list and no socket events", { skip: !PRODUCTION && "development mode" }, async () => {
  const { socket: ui, config, allSockets } = await admin({ username: USER, password: PASSWORD });
  const told = [];
  for (const event of ["all_sockets", "socket_connected", "socket_updated", "socket_disconnected", "room_joined", "room_left", "event_received", "event_sent"]) {
    ui.on(event, () => told.push(event));
  }
  assert.deepEqual(config, { supportedFeatures: ["AGGREGATED_EVENTS"] });
  assert.equal(allSockets, null);
  const erin = await register("AdminErin");
  const { socket: chat } = await connect(erin.token);
  await emitWithAck(chat, "ping", {});
  chat.close();
  // The barrier: statistics that count the chat socket's coming and going were sent after
  // every look that could have told it.
  await waitForArgs(ui, "server_stats", (s) => s.aggregatedEvents.some((e) => e.type === "rawDisconnection"), 6000);
  await waitForArgs(ui, "server_stats", () => true, 4500);
  assert.deepEqual(told, [], "nothing but statistics");
  ui.close();
});

// Last: it leaves this address locked out of password logins for 15 minutes.
test("password attempts are limited per address, as the REST login's are; a session id still works", withLogin, async () => {
  const good = await admin({ username: USER, password: PASSWORD });
  const session = await good.session;
  good.socket.close();
  let message;
  for (let attempt = 0; attempt < 6; attempt++) {
    message = await refused({ username: USER, password: `wrong ${attempt}` });
    if (message.startsWith("RATE_LIMITED")) break;
    assert.equal(message, "invalid credentials");
  }
  assert.match(message, /^RATE_LIMITED: too many admin logins from this address; try again in \d+ s$/);
  assert.match(await refused({ username: USER, password: PASSWORD }), /^RATE_LIMITED/, "even the right password waits");
  const again = await admin({ sessionId: session });
  assert.ok(again.config.supportedFeatures.includes("AGGREGATED_EVENTS"), "a session id is not a password attempt");
  again.socket.close();
});
