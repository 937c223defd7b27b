// Abuse limits and bad input with the npm socket.io-client (issue 17, points 3 and 4): a
// flooding client is told to stop (`io server disconnect`: it does not reconnect by itself)
// and connecting again inside the cool-down is refused; a long-polling POST over the size
// limit gets its 413 every time (no EPIPE); half an emoji is refused naming the field.
//
// Run by run.sh against a server of its own with TRUST_PROXY=true (not by `npm test`): each
// test comes from its own client address (X-Forwarded-For), so a cool-down shuts out no one
// else.
import { test } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import { io } from "socket.io-client";
import { BASE, api, register, waitFor } from "./lib.mjs";

const from = (address) => ({ extraHeaders: { "x-forwarded-for": address } });

/** A socket of `user` from `address`, with socket.io-client's own reconnection on. */
function open(user, address) {
  return io(`${BASE}/chat`, { auth: { token: user.token }, transports: ["websocket"], forceNew: true, ...from(address) });
}

/** The `connect_error` of a connect attempt by `user` from `address`. */
async function refusal(user, address) {
  const socket = open(user, address);
  try {
    return await Promise.race([
      waitFor(socket, "connect_error"),
      waitFor(socket, "connect").then(() => assert.fail(`${user.displayName} from ${address} connected`)),
    ]);
  } finally {
    socket.close();
  }
}

test("a flooding socket.io-client is disconnected for good, and refused while it cools down", async () => {
  const [ann, bob, cat] = [await register("Ann"), await register("Bob"), await register("Cat")];
  const socket = open(ann, "203.0.113.50");
  await waitFor(socket, "sync:complete");
  let attempts = 0;
  socket.io.on("reconnect_attempt", () => attempts++);
  const disconnected = waitFor(socket, "disconnect", 30000);
  const codes = [];
  // Far beyond 10 × the burst (1200 events): the flood budget is gone after some 1200.
  for (let i = 0; i < 3000; i++) socket.emit("ping", { timestamp: i }, (ack) => codes.push(ack.ok ? "ok" : ack.error.code));
  assert.equal(await disconnected, "io server disconnect", "the disconnect packet arrived (not a dropped connection)");
  assert.equal(socket.active, false, "socket.io-client will not reconnect by itself");
  assert.ok(codes.includes("RATE_LIMITED"), `acks: ${codes.length}`);

  // Connecting again by hand, inside the cool-down: refused, saying for how long.
  const refused = waitFor(socket, "connect_error");
  socket.connect();
  assert.match((await refused).message, /^RATE_LIMITED: .*connect again in \d+ s$/);
  socket.close();
  assert.equal(attempts, 0, "no automatic reconnect attempt");
  // The address (another user) and the user (another address) cool down too; others do not.
  assert.match((await refusal(bob, "203.0.113.50")).message, /^RATE_LIMITED/);
  assert.match((await refusal(ann, "198.51.100.51")).message, /^RATE_LIMITED/);
  const other = open(cat, "198.51.100.52");
  await waitFor(other, "sync:complete");
  other.close();
});

/** POSTs `bytes` to a long-polling session; resolves with the status, rejects on a socket error. */
function postPolling(sid, bytes) {
  return new Promise((resolve, reject) => {
    const url = new URL(`${BASE}/socket.io/?EIO=4&transport=polling&sid=${sid}`);
    const request = http.request(url, {
      method: "POST",
      agent: false,
      headers: { "content-type": "text/plain;charset=UTF-8", "content-length": bytes.length },
    });
    request.on("response", (response) => {
      response.resume();
      response.on("end", () => resolve(response.statusCode));
    });
    request.on("error", reject);
    request.end(bytes);
  });
}

test("a long-polling POST over the size limit gets its 413, every time", async () => {
  const body = Buffer.alloc(10 * 1024 * 1024, "x");
  const statuses = [];
  for (let i = 0; i < 20; i++) {
    const handshake = await (await fetch(`${BASE}/socket.io/?EIO=4&transport=polling`)).text();
    const { sid } = JSON.parse(handshake.slice(1));
    statuses.push(await postPolling(sid, body).catch((err) => err.code ?? err.message));
  }
  assert.deepEqual(statuses, Array(20).fill(413));
});

test("half an emoji (String.slice) is refused naming the field, on the socket and over REST", async () => {
  const [ann, bob] = [await register("Ann"), await register("Bob")];
  const created = await api("/api/conversations", { method: "POST", token: ann.token, body: { type: "direct", participantIds: [bob.id] } });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  const conversationId = created.body.id;
  const half = "hi 😀".slice(0, 4);
  const socket = open(ann, "198.51.100.60");
  await waitFor(socket, "sync:complete");
  const ack = await socket.timeout(5000).emitWithAck("message:send", { conversationId, clientMessageId: "half", content: half });
  assert.equal(ack.error?.code, "VALIDATION_ERROR", JSON.stringify(ack));
  assert.equal(ack.error.details.field, "content");
  const rest = await api(`/api/conversations/${conversationId}/messages`, {
    method: "POST",
    token: ann.token,
    body: { clientMessageId: "half-rest", content: half },
  });
  assert.equal(rest.status, 400, JSON.stringify(rest.body));
  assert.equal(rest.body.error.details.field, "content");
  const whole = await socket.timeout(5000).emitWithAck("message:send", { conversationId, clientMessageId: "whole", content: "hi 😀" });
  assert.equal(whole.ok, true, JSON.stringify(whole));
  assert.equal(whole.data.message.seq, 1, "nothing was stored before");
  socket.close();
});
