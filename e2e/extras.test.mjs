// Replies, reactions, mentions, pins and search with the npm socket.io-client (SPEC §4.2).
import { test } from "node:test";
import assert from "node:assert/strict";
import { api, connect, emitWithAck, register, waitFor } from "./lib.mjs";

async function group(owner, members) {
  const reply = await api("/api/conversations", { method: "POST", token: owner.token, body: { type: "group", title: "Crew", participantIds: members.map((m) => m.id) } });
  assert.equal(reply.status, 201, JSON.stringify(reply.body));
  return reply.body.id;
}

async function send(socket, conversationId, content, extra = {}) {
  const ack = await emitWithAck(socket, "message:send", { conversationId, content, clientMessageId: crypto.randomUUID(), ...extra });
  assert.equal(ack.ok, true, JSON.stringify(ack));
  return ack.data.message;
}

test("a reply carries a preview of the message it answers", async () => {
  const [ann, bob] = [await register("Ann"), await register("Bob")];
  const conversationId = await group(ann, [bob]);
  const [a, b] = [await connect(ann.token), await connect(bob.token)];
  const question = await send(b.socket, conversationId, "lunch at noon?");
  const received = waitFor(b.socket, "message:received");
  const answer = await send(a.socket, conversationId, "yes!", { replyToId: question.id });
  assert.deepEqual(answer.replyTo, { id: question.id, senderId: bob.id, content: "lunch at noon?", deletedAt: null });
  assert.equal((await received).message.replyTo.id, question.id);
  a.socket.close();
  b.socket.close();
});

test("twenty clients reacting at once are counted exactly", async () => {
  const owner = await register("Owner");
  const reactors = await Promise.all(Array.from({ length: 20 }, (_, i) => register(`Reactor${i}`)));
  const conversationId = await group(owner, reactors);
  const o = await connect(owner.token);
  const message = await send(o.socket, conversationId, "react to this");
  const sockets = await Promise.all(reactors.map((r) => connect(r.token)));
  const acks = await Promise.all(sockets.map(({ socket }) => emitWithAck(socket, "reaction:add", { conversationId, messageId: message.id, emoji: "🎉" })));
  assert.deepEqual(acks.map((ack) => ack.data.version).sort((x, y) => x - y), Array.from({ length: 20 }, (_, i) => i + 1));
  const history = await api(`/api/conversations/${conversationId}/messages`, { token: owner.token });
  assert.deepEqual(history.body.messages[0].reactions.map((r) => [r.emoji, r.count, r.me]), [["🎉", 20, false]]);
  for (const { socket } of [...sockets, o]) socket.close();
});

test("mentions, pins, and a search that finds a message until it is deleted", async () => {
  const [ann, bob] = [await register("Ann"), await register("Bob")];
  const conversationId = await group(ann, [bob]);
  const me = await api("/api/users/me", { token: bob.token });
  const [a, b] = [await connect(ann.token), await connect(bob.token)];
  const word = `zebra${crypto.randomUUID().slice(0, 6)}`;
  const message = await send(a.socket, conversationId, `@${me.body.username} look: ${word} crossing`);
  assert.deepEqual(message.mentions, [bob.id]);
  const list = await api("/api/conversations", { token: bob.token });
  assert.equal(list.body.conversations.find((c) => c.id === conversationId).mentionedCount, 1);

  const pinned = waitFor(b.socket, "message:pinned");
  const pin = await api(`/api/conversations/${conversationId}/pins/${message.id}`, { method: "PUT", token: ann.token });
  assert.equal(pin.status, 200, JSON.stringify(pin.body));
  assert.equal((await pinned).messageId, message.id);
  const pins = await api(`/api/conversations/${conversationId}/pins`, { token: bob.token });
  assert.deepEqual(pins.body.map((p) => p.message.id), [message.id]);

  const found = await api(`/api/search/messages?q=${encodeURIComponent(word.slice(0, 7))}`, { token: bob.token });
  assert.equal(found.status, 200, JSON.stringify(found.body));
  assert.deepEqual(found.body.results.map((r) => r.message.id), [message.id]);
  const start = message.content.indexOf(word);
  assert.deepEqual(found.body.results[0].highlights, [[start, start + 7]]);
  const deleted = await api(`/api/conversations/${conversationId}/messages/${message.id}`, { method: "DELETE", token: ann.token });
  assert.equal(deleted.status, 200);
  const gone = await api(`/api/search/messages?q=${encodeURIComponent(word)}`, { token: bob.token });
  assert.deepEqual(gone.body.results, []);
  a.socket.close();
  b.socket.close();
});
