// Seed 001's integration flow with two socket.io-client processes: open a conversation,
// send, the sender sees message:sent, the peer sees message:received, "refresh" (a new
// connection and a history fetch) and the message is still there, exactly once.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { api, connect, emitWithAck, register, waitFor } from "./lib.mjs";

/** Runs client.mjs. `done` resolves with its JSON lines once it exits 0; `onLine` sees each
 * early; `close()` tells a receiver to close its socket. */
function participant(args, onLine = () => {}) {
  const child = spawn(process.execPath, [new URL("./client.mjs", import.meta.url).pathname, ...args], {
    env: process.env,
    stdio: ["pipe", "pipe", "inherit"],
  });
  const lines = [];
  createInterface({ input: child.stdout }).on("line", (line) => {
    const parsed = JSON.parse(line);
    lines.push(parsed);
    onLine(parsed);
  });
  const done = new Promise((resolve, reject) => {
    child.on("exit", (code) => (code === 0 ? resolve(lines) : reject(new Error(`client ${args[0]} exited ${code}: ${JSON.stringify(lines)}`))));
  });
  return { done, close: () => child.stdin.end("close\n") };
}

async function openDirect(alice, bob) {
  const reply = await api("/api/conversations", { method: "POST", token: alice.token, body: { type: "direct", participantIds: [bob.id] } });
  assert.equal(reply.status, 201, JSON.stringify(reply.body));
  return reply.body.id;
}

for (const transport of ["websocket", "polling"]) {
  test(`two socket.io-client processes chat over ${transport}`, async () => {
    const alice = await register("Alice");
    const bob = await register("Bob");
    const conversationId = await openDirect(alice, bob);

    let bobReady;
    const bobIsReady = new Promise((resolve) => (bobReady = resolve));
    const bobRun = participant(["receive", bob.token, "1"], (line) => line.kind === "ready" && bobReady());
    await bobIsReady;
    const aliceLines = await participant(["send", alice.token, conversationId, "Hello Bob!", transport]).done;
    // Bob reads on for as long as Alice takes to hear "delivered", then closes the tab.
    bobRun.close();
    const bobLines = await bobRun.done;

    const ack = aliceLines.find((l) => l.kind === "ack").payload;
    const sent = aliceLines.find((l) => l.kind === "message:sent").payload;
    assert.equal(ack.ok, true);
    assert.equal(sent.status, "delivered");
    assert.equal(sent.seq, 1);
    assert.equal(sent.messageId, ack.data.messageId);
    const received = bobLines.find((l) => l.kind === "message:received").payload.message;
    assert.equal(received.id, sent.messageId);
    assert.equal(received.content, "Hello Bob!");
    assert.equal(received.sender.id, alice.id);

    // "Refresh the page": history persists, and reconnecting replays nothing twice.
    const history = await api(`/api/conversations/${conversationId}/messages`, { token: bob.token });
    assert.equal(history.status, 200);
    assert.deepEqual(history.body.messages.map((m) => m.content), ["Hello Bob!"]);
    const again = await connect(bob.token);
    again.socket.close();
    assert.equal(again.summary.messages, 0);
  });
}

test("a message sent while the peer is offline is replayed on connect", async () => {
  const alice = await register("Alice");
  const bob = await register("Bob");
  const conversationId = await openDirect(alice, bob);
  const { socket } = await connect(alice.token);
  try {
    for (const content of ["one", "two", "three"]) {
      const ack = await emitWithAck(socket, "message:send", { conversationId, content, clientMessageId: crypto.randomUUID() });
      assert.equal(ack.ok, true, JSON.stringify(ack));
    }
  } finally {
    socket.close();
  }
  const { io } = await import("socket.io-client");
  const { BASE } = await import("./lib.mjs");
  const bobSocket = io(`${BASE}/chat`, { auth: { token: bob.token }, reconnection: false });
  const replayed = [];
  bobSocket.on("message:received", ({ message }) => replayed.push(message.content));
  try {
    const summary = await waitFor(bobSocket, "sync:complete");
    assert.deepEqual(replayed, ["one", "two", "three"]);
    assert.deepEqual(summary, { messages: 3, conversations: 1, truncated: [] });
  } finally {
    bobSocket.close();
  }
});

test("bad input gets error acks and the socket stays usable", async () => {
  const alice = await register("Alice");
  const bob = await register("Bob");
  const conversationId = await openDirect(alice, bob);
  const { socket } = await connect(alice.token);
  try {
    const error = waitFor(socket, "message:error");
    const refused = await emitWithAck(socket, "message:send", { conversationId, content: "", clientMessageId: "x" });
    assert.deepEqual([refused.ok, refused.error.code], [false, "VALIDATION_ERROR"]);
    assert.equal((await error).code, "VALIDATION_ERROR");
    const unknown = await emitWithAck(socket, "no:such:event", {});
    assert.equal(unknown.ok, false);
    const fine = await emitWithAck(socket, "message:send", { conversationId, content: "ok", clientMessageId: "y" });
    assert.equal(fine.ok, true);
  } finally {
    socket.close();
  }
});
