// Seed 002's client code path against the real binary: a plain WebSocket (the npm `ws`,
// with the browser's API) at /chat/ws?token=, JSON envelopes {type, payload}, as in seed
// 002 §13, meeting a socket.io-client user in one conversation.
import { test } from "node:test";
import assert from "node:assert/strict";
import WebSocket from "ws";
import { BASE, WAIT_MS, api, connect, emitWithAck, register, waitFor } from "./lib.mjs";
import { rawClient } from "./raw-client.mjs";

test("a raw WebSocket client and a socket.io-client user chat in one conversation", async () => {
  const ann = await register("Ann");
  const bob = await register("Bob");
  for (const [a, b] of [[ann, bob], [bob, ann]]) {
    assert.equal((await api(`/api/users/${b.id}/follow`, { method: "POST", token: a.token })).status, 200);
  }
  const opened = await api("/api/conversations", { method: "POST", token: ann.token, body: { type: "direct", participantIds: [bob.id] } });
  const conversationId = opened.body.id;
  const { socket: bobSocket } = await connect(bob.token);
  await emitWithAck(bobSocket, "subscribe", { conversationId });
  const bobSeesAnn = waitFor(bobSocket, "presence:update");

  const raw = rawClient(BASE, ann.token);
  const hello = await raw.next("connection.success");
  assert.equal(hello.payload.userId, ann.id);
  assert.ok(Array.isArray((await raw.next("status.bulk")).payload.users));
  assert.equal((await bobSeesAnn).status, "online");

  // Raw → socket.io-client, and a retried tempId stored once.
  const tempId = `temp-${Date.now()}`;
  const bobGets = waitFor(bobSocket, "message:received");
  raw.send("message.send", { conversationId, type: "text", content: "Hello there!", tempId });
  const sent = await raw.next("message.sent");
  assert.equal(sent.payload.tempId, tempId);
  assert.equal(sent.payload.message.isRead, false);
  assert.equal((await bobGets).message.id, sent.payload.message.id);
  raw.send("message.send", { conversationId, type: "text", content: "Hello there!", tempId });
  assert.equal((await raw.next("message.sent")).payload.message.id, sent.payload.message.id);
  const history = await api(`/api/conversations/${conversationId}/messages`, { token: bob.token });
  assert.equal(history.body.messages.length, 1, "the retry was stored once");

  // socket.io-client → raw, with the sender's profile.
  assert.equal((await emitWithAck(bobSocket, "message:send", { conversationId, clientMessageId: "b-1", content: "hi ann" })).ok, true);
  const incoming = await raw.next("message.new");
  assert.equal(incoming.payload.message.content, "hi ann");
  assert.equal(incoming.payload.message.sender.username, bob.username);

  // Typing both ways (the raw client never subscribes).
  const bobSeesTyping = waitFor(bobSocket, "typing:started");
  raw.send("typing.start", { conversationId });
  assert.equal((await bobSeesTyping).userId, ann.id);
  await emitWithAck(bobSocket, "typing:start", { conversationId });
  assert.equal((await raw.next("typing.start")).payload.userId, bob.id);

  // A read receipt: the reader's ack, the sender's update.
  const bobSeesRead = waitFor(bobSocket, "receipt:updated");
  raw.send("message.read", { conversationId });
  assert.equal((await raw.next("message.read_ack")).payload.conversationId, conversationId);
  assert.equal((await bobSeesRead).userId, ann.id);

  // Bad input gets the seed's error envelope; the connection goes on.
  raw.socket.send("not json");
  assert.equal((await raw.next("error")).error.code, "invalid_message");
  raw.send("ping", { timestamp: 1704067200 });
  assert.equal((await raw.next("pong")).payload.timestamp, 1704067200);

  raw.socket.close();
  bobSocket.close();
});

test("a raw WebSocket client with a bad token gets the seed's error and a close 1008", async () => {
  const socket = new WebSocket(`${BASE.replace(/^http/, "ws")}/chat/ws?token=garbage`);
  const [message, code] = await new Promise((resolve, reject) => {
    let first;
    const timer = setTimeout(() => reject(new Error("not closed")), WAIT_MS);
    socket.onmessage = (event) => (first = JSON.parse(event.data));
    socket.onclose = (event) => {
      clearTimeout(timer);
      resolve([first, event.code]);
    };
  });
  assert.deepEqual(message.error.code, "unauthorized");
  assert.equal(message.type, "error");
  assert.equal(code, 1008);
});
