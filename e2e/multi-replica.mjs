// The production topology on loopback: two Parley replicas (PostgreSQL + a Redis of its
// own) behind nginx, clients on both sides over websocket and polling, then faults:
// SIGKILL of a replica, a Redis restart, SIGTERM of the other. Then a fresh topology for
// seed 002's raw WebSocket client meeting a socket.io-client user across the replicas, and
// the raw client's replica killed. Run by multi-replica.sh.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import http from "node:http";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { io } from "socket.io-client";
import { rawClient, reconnectingRawClient } from "./raw-client.mjs";

const BIN = process.env.PARLEY_BIN;
const DATABASE_URL = process.env.DATABASE_URL;
const WORK = mkdtempSync(join(tmpdir(), "parley-multi-"));
const WAIT = 5000;
const log = (...args) => console.log("#", ...args);

const freePort = () =>
  new Promise((resolve) => {
    const server = net.createServer().listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });

const until = async (what, check, ms = 15000) => {
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      if (await check()) return;
    } catch {}
    if (Date.now() > deadline) throw new Error(`${what} not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
};

function get(port, path, localAddress = "127.0.0.1") {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: "127.0.0.1", port, path, localAddress }, (res) => {
      let body = "";
      res.on("data", (c) => (body += c));
      res.on("end", () => resolve({ status: res.statusCode, body: body ? JSON.parse(body) : null }));
    });
    req.on("error", reject);
    req.end();
  });
}

function api(port, path, { method = "GET", token, body } = {}) {
  return new Promise((resolve, reject) => {
    const headers = { "content-type": "application/json" };
    if (token) headers.authorization = `Bearer ${token}`;
    const req = http.request({ host: "127.0.0.1", port, path, method, headers }, (res) => {
      let text = "";
      res.on("data", (c) => (text += c));
      res.on("end", () => resolve({ status: res.statusCode, body: text ? JSON.parse(text) : null }));
    });
    req.on("error", reject);
    req.end(body === undefined ? undefined : JSON.stringify(body));
  });
}

class Processes {
  constructor() {
    this.children = new Map();
  }
  start(name, command, args, env = {}) {
    const child = spawn(command, args, { env: { ...process.env, ...env }, stdio: ["ignore", "ignore", "pipe"] });
    child.stderr.on("data", () => {});
    this.children.set(name, child);
    return child;
  }
  async stop(name, signal) {
    const child = this.children.get(name);
    if (!child || child.exitCode !== null) return null;
    const exited = new Promise((resolve) => child.on("exit", (code, sig) => resolve({ code, signal: sig })));
    child.kill(signal);
    const result = await exited;
    this.children.delete(name);
    return result;
  }
  async stopAll() {
    for (const name of [...this.children.keys()]) await this.stop(name, "SIGKILL");
  }
}

const procs = new Processes();
let redisPort, nginxPort;
const replicas = {};

async function startRedis() {
  procs.start("redis", "redis-server", ["--port", String(redisPort), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", WORK]);
  await until("redis", () => new Promise((resolve) => {
    const socket = net.connect(redisPort, "127.0.0.1", () => socket.write("PING\r\n"));
    socket.on("data", (d) => { socket.destroy(); resolve(d.toString().includes("PONG")); });
    socket.on("error", () => resolve(false));
  }));
}

async function startReplica(name) {
  const port = replicas[name]?.port ?? (await freePort());
  procs.start(name, BIN, [], {
    PARLEY_ADDR: `127.0.0.1:${port}`, PARLEY_DATA_DIR: join(WORK, name), DATABASE_URL,
    REDIS_URL: `redis://127.0.0.1:${redisPort}`, REDIS_KEY_PREFIX: "multi:", JWT_SECRET: "e2e-multi-replica-secret-0123456789abcdef",
    TRUST_PROXY: "true", PRESENCE_GRACE_SECS: "1", MESSAGE_RATE_PER_MIN: "100000", REGISTRATIONS_PER_HOUR: "0", RUST_LOG: "warn",
  });
  await until(`${name} ready`, async () => (await get(port, "/health/ready")).status === 200);
  replicas[name] = { port, instance: (await get(port, "/health/live")).body.instance };
}

async function startNginx() {
  const site = readFileSync(new URL("../nginx/parley.conf", import.meta.url), "utf8")
    .replace("server app1:3000", `server 127.0.0.1:${replicas.a.port}`)
    .replace("server app2:3000", `server 127.0.0.1:${replicas.b.port}`)
    .replace("listen 80;", `listen 127.0.0.1:${nginxPort};`);
  writeFileSync(join(WORK, "site.conf"), site);
  writeFileSync(join(WORK, "nginx.conf"), `
worker_processes 1;
pid ${WORK}/nginx.pid;
error_log ${WORK}/nginx-error.log;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path ${WORK}/body; proxy_temp_path ${WORK}/proxy;
  fastcgi_temp_path ${WORK}/fastcgi; uwsgi_temp_path ${WORK}/uwsgi; scgi_temp_path ${WORK}/scgi;
  include ${WORK}/site.conf;
}`);
  procs.start("nginx", "nginx", ["-p", WORK, "-c", join(WORK, "nginx.conf"), "-g", "daemon off;"]);
  await until("nginx", async () => (await get(nginxPort, "/health/live")).status === 200);
}

/** A loopback source address that nginx hashes onto `instance`. */
async function addressFor(instance) {
  for (let i = 2; i < 250; i++) {
    const address = `127.0.0.${i}`;
    if ((await get(nginxPort, "/health/live", address)).body.instance === instance) return address;
  }
  throw new Error(`no source address reaches ${instance}`);
}

/** Redis, replicas a and b and nginx, all fresh; the source addresses nginx sends to a and b. */
async function startTopology() {
  redisPort = await freePort();
  nginxPort = await freePort();
  delete replicas.a;
  delete replicas.b;
  await startRedis();
  await startReplica("a");
  await startReplica("b");
  await startNginx();
  const [onA, onB] = [await addressFor(replicas.a.instance), await addressFor(replicas.b.instance)];
  log(`replica a on :${replicas.a.port} (clients from ${onA}), replica b on :${replicas.b.port} (clients from ${onB}), nginx :${nginxPort}`);
  return [onA, onB];
}

const openSockets = [];

function client(user, localAddress, transport, extra = {}) {
  const socket = io(`http://127.0.0.1:${nginxPort}/chat`, {
    auth: { token: user.token }, transports: [transport], localAddress,
    agent: new http.Agent({ localAddress }), reconnectionDelay: 200, reconnectionDelayMax: 1000, ...extra,
  });
  socket.seen = new Map();
  socket.on("message:received", ({ message }) => socket.seen.set(message.id, message));
  openSockets.push(socket);
  return socket;
}

const waitFor = (socket, event, predicate = () => true, ms = WAIT) =>
  new Promise((resolve, reject) => {
    const timer = setTimeout(() => { socket.off(event, on); reject(new Error(`no ${event} within ${ms} ms`)); }, ms);
    const on = (payload) => { if (predicate(payload)) { clearTimeout(timer); socket.off(event, on); resolve(payload); } };
    socket.on(event, on);
  });

async function register(name) {
  const email = `${name}.${Math.random().toString(36).slice(2, 10)}@example.com`;
  const reply = await api(nginxPort, "/api/auth/register", { method: "POST", body: { email, password: "correct horse battery", displayName: name } });
  assert.equal(reply.status, 201, JSON.stringify(reply.body));
  return { ...reply.body.user, token: reply.body.accessToken };
}

async function sendMessage(socket, conversationId, content) {
  const ack = await socket.timeout(WAIT).emitWithAck("message:send", { conversationId, content, clientMessageId: crypto.randomUUID() });
  assert.equal(ack.ok, true, JSON.stringify(ack));
  return ack.data;
}

test("two replicas behind nginx: delivery, presence, typing, receipts, unread, then faults", { timeout: 120000 }, async (t) => {
  // On failure too: close the clients (they would keep reconnecting) and stop every process.
  t.after(async () => {
    for (const socket of openSockets) socket.close();
    await procs.stopAll();
  });
  const [onA, onB] = await startTopology();

  const [ann, bob] = [await register("Ann"), await register("Bob")];
  for (const [from, to] of [[ann, bob], [bob, ann]]) {
    assert.equal((await api(nginxPort, `/api/users/${to.id}/follow`, { method: "POST", token: from.token })).status, 200);
  }
  const created = await api(nginxPort, "/api/conversations", { method: "POST", token: ann.token, body: { type: "direct", participantIds: [bob.id] } });
  const conversationId = created.body.id;

  const bobSocket = client(bob, onB, "polling");
  await waitFor(bobSocket, "sync:complete");
  const bobSawAnn = waitFor(bobSocket, "presence:update", (p) => p.userId === ann.id && p.status === "online");
  const annSocket = client(ann, onA, "websocket");
  await waitFor(annSocket, "sync:complete");
  await bobSawAnn;
  log("presence crosses replicas (a → b)");
  for (const socket of [annSocket, bobSocket]) await socket.timeout(WAIT).emitWithAck("subscribe", { conversationId });

  const typing = waitFor(bobSocket, "typing:started", (p) => p.userId === ann.id);
  await annSocket.timeout(WAIT).emitWithAck("typing:start", { conversationId });
  await typing;
  log("typing crosses replicas");

  // Listeners first: the event may arrive before the sender's ack.
  const unread = waitFor(bobSocket, "unread:updated", (p) => p.unreadCount === 1);
  const received = waitFor(bobSocket, "message:received", ({ message }) => message.content === "hello across replicas");
  const sent = await sendMessage(annSocket, conversationId, "hello across replicas");
  assert.equal((await received).message.id, sent.messageId);
  await unread;
  log("message and unread push cross replicas (websocket → polling)");
  const receipt = waitFor(annSocket, "receipt:updated", (r) => r.userId === bob.id);
  await bobSocket.timeout(WAIT).emitWithAck("receipt:read", { conversationId, messageId: sent.messageId });
  await receipt;
  log("receipt crosses replicas (b → a)");

  // Fault 1: SIGKILL replica a. Ann's socket reconnects through nginx (to b) and gets what
  // Bob sent meanwhile.
  const acked = [sent.messageId];
  const annBack = waitFor(annSocket, "sync:complete", () => true, 20000);
  await procs.stop("a", "SIGKILL");
  log("FAULT: replica a killed with SIGKILL");
  for (let i = 0; i < 3; i++) acked.push((await sendMessage(bobSocket, conversationId, `while ann reconnects ${i}`)).messageId);
  await annBack;
  await until("ann has everything bob sent", () => acked.every((id) => id === sent.messageId || annSocket.seen.has(id)), 10000);
  log("ann reconnected through nginx and received every message sent meanwhile");
  const presence = await api(nginxPort, `/api/users/${ann.id}/presence`, { token: bob.token });
  assert.equal(presence.body.status, "online", JSON.stringify(presence.body));
  log("ann's presence is online again, served by the surviving replica");

  // Fault 2: Redis restarts; broadcasts between replicas work again by themselves.
  await startReplica("a");
  await procs.stop("redis", "SIGKILL");
  log("FAULT: Redis killed");
  const during = await sendMessage(bobSocket, conversationId, "while redis is down");
  acked.push(during.messageId);
  await startRedis();
  log("Redis restarted");
  const annOnA = client(ann, onA, "websocket");
  await waitFor(annOnA, "sync:complete", () => true, 15000);
  const restarted = Date.now();
  await until("broadcasts across replicas after the Redis restart", async () => {
    const data = await sendMessage(bobSocket, conversationId, "after redis");
    acked.push(data.messageId);
    return annOnA.seen.has(data.messageId);
  }, 10000);
  log(`broadcasts across replicas recovered ${Date.now() - restarted} ms after Redis came back`);

  // Fault 3: SIGTERM replica b: it drains and exits cleanly within 10 s; Bob reconnects to a.
  const bobBack = waitFor(bobSocket, "sync:complete", () => true, 20000);
  const drainStarted = Date.now();
  const exit = await procs.stop("b", "SIGTERM");
  assert.equal(exit.code, 0, JSON.stringify(exit));
  assert.ok(Date.now() - drainStarted < 10000, "drained within 10 s");
  log(`FAULT: replica b got SIGTERM and exited 0 after ${Date.now() - drainStarted} ms`);
  await bobBack;
  acked.push((await sendMessage(annOnA, conversationId, "after the drain")).messageId);

  // Nothing lost: every acked message is stored, and reached both sides.
  const history = await api(nginxPort, `/api/conversations/${conversationId}/messages?limit=100`, { token: ann.token });
  const stored = new Set(history.body.messages.map((m) => m.id));
  const missing = acked.filter((id) => !stored.has(id));
  assert.deepEqual(missing, [], "every message acked as message:sent is in the database");
  const bobMissing = () => acked.filter((id) => !bobSocket.seen.has(id) && !history.body.messages.find((m) => m.id === id && m.senderId === bob.id));
  await until("bob received every message ann sent", () => bobMissing().length === 0, 10000);
  log(`nothing lost: ${acked.length} acked messages stored and delivered across 3 faults`);
  for (const socket of [annSocket, bobSocket, annOnA]) socket.close();
});

test("seed 002's raw WebSocket client and a socket.io-client user across replicas, and the raw client's replica killed", { timeout: 120000 }, async (t) => {
  const raws = [];
  t.after(async () => {
    for (const socket of openSockets) socket.close();
    for (const raw of raws) raw.socket.terminate();
    await procs.stopAll();
  });
  const [onA, onB] = await startTopology();
  const base = `http://127.0.0.1:${nginxPort}`;
  const rawOn = (user, address) => {
    const raw = rawClient(base, user.token, { localAddress: address });
    raws.push(raw);
    return raw;
  };
  const [ann, bob] = [await register("Ann"), await register("Bob")];
  for (const [from, to] of [[ann, bob], [bob, ann]]) {
    assert.equal((await api(nginxPort, `/api/users/${to.id}/follow`, { method: "POST", token: from.token })).status, 200);
  }
  const created = await api(nginxPort, "/api/conversations", { method: "POST", token: ann.token, body: { type: "direct", participantIds: [bob.id] } });
  const conversationId = created.body.id;

  // Bob on replica b (socket.io-client); Ann's raw client on replica a.
  const bobSocket = client(bob, onB, "websocket");
  await waitFor(bobSocket, "sync:complete");
  await bobSocket.timeout(WAIT).emitWithAck("subscribe", { conversationId });
  const bobSawAnn = waitFor(bobSocket, "presence:update", (p) => p.userId === ann.id && p.status === "online");
  const raw = rawOn(ann, onA);
  assert.equal((await raw.next("connection.success")).payload.userId, ann.id);
  const bulk = (await raw.next("status.bulk")).payload.users;
  assert.equal(bulk.find((u) => u.userId === bob.id)?.isOnline, true, JSON.stringify(bulk));
  await bobSawAnn;
  log("presence both ways across replicas (raw on a, socket.io on b)");

  // Raw → socket.io, and a retried tempId stored once.
  const bobGets = waitFor(bobSocket, "message:received", ({ message }) => message.content === "Hello there!");
  raw.send("message.send", { conversationId, type: "text", content: "Hello there!", tempId: "temp-1" });
  const sent = (await raw.next("message.sent")).payload;
  assert.equal((await bobGets).message.id, sent.message.id);
  raw.send("message.send", { conversationId, type: "text", content: "Hello there!", tempId: "temp-1" });
  assert.equal((await raw.next("message.sent")).payload.message.id, sent.message.id);
  const once = await api(nginxPort, `/api/conversations/${conversationId}/messages`, { token: bob.token });
  assert.equal(once.body.messages.length, 1, "the retried tempId was stored once");
  // Socket.IO → raw.
  const back = await sendMessage(bobSocket, conversationId, "hi ann");
  assert.equal((await raw.next("message.new")).payload.message.id, back.messageId);
  log("messages both ways across replicas; a retried tempId stored once");

  // Typing both ways, and a read receipt.
  const bobSeesTyping = waitFor(bobSocket, "typing:started", (p) => p.userId === ann.id);
  raw.send("typing.start", { conversationId });
  await bobSeesTyping;
  await bobSocket.timeout(WAIT).emitWithAck("typing:start", { conversationId });
  assert.equal((await raw.next("typing.start")).payload.userId, bob.id);
  const bobSeesRead = waitFor(bobSocket, "receipt:updated", (r) => r.userId === ann.id);
  raw.send("message.read", { conversationId });
  await raw.next("message.read_ack");
  await bobSeesRead;
  log("typing and a read receipt across replicas");

  // Kill replica a while Ann's raw client is sending: whatever it acked is stored.
  const acked = [sent.message.id, back.messageId];
  for (let i = 0; i < 20; i++) raw.send("message.send", { conversationId, type: "text", content: `burst ${i}`, tempId: `burst-${i}` });
  for (let i = 0; i < 3; i++) acked.push((await raw.next("message.sent")).payload.message.id);
  await procs.stop("a", "SIGKILL");
  log("FAULT: replica a (ann's raw connection) killed with SIGKILL");
  await raw.closed;
  for (const envelope of raw.received.filter((m) => m.type === "message.sent")) acked.push(envelope.payload.message.id);
  // Bob goes on sending while Ann is away.
  const whileAway = [];
  for (let i = 0; i < 3; i++) whileAway.push((await sendMessage(bobSocket, conversationId, `while ann is away ${i}`)).messageId);
  acked.push(...whileAway);
  // Ann's client reconnects as seed 002's does: a new WebSocket, which nginx sends to b.
  const again = await reconnectingRawClient(base, ann.token, { localAddress: onA });
  raws.push(again);
  const replayed = new Set();
  await until("ann's reconnected raw client got what bob sent meanwhile", async () => {
    for (const envelope of again.received.filter((m) => m.type === "message.new")) replayed.add(envelope.payload.message.id);
    return whileAway.every((id) => replayed.has(id));
  }, 10000);
  log(`ann's raw client reconnected through nginx and got the ${whileAway.length} messages sent meanwhile`);
  const history = await api(nginxPort, `/api/conversations/${conversationId}/messages?limit=100`, { token: bob.token });
  const stored = new Set(history.body.messages.map((m) => m.id));
  assert.deepEqual(acked.filter((id) => !stored.has(id)), [], "every acked message is stored");
  // A resend of every burst message (a client retrying what it never saw acked) adds none twice.
  for (let i = 0; i < 20; i++) again.send("message.send", { conversationId, type: "text", content: `burst ${i}`, tempId: `burst-${i}` });
  for (let i = 0; i < 20; i++) await again.next("message.sent");
  const after = await api(nginxPort, `/api/conversations/${conversationId}/messages?limit=100`, { token: bob.token });
  const bursts = after.body.messages.filter((m) => m.content.startsWith("burst "));
  assert.equal(bursts.length, 20, "each burst message stored exactly once");
  log(`nothing acked lost: ${acked.length} acked messages stored; the retried burst stored once each`);
});
