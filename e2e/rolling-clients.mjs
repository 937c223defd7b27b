// Three chat clients that keep sending through faults, for the rolling-restart test in
// multi-replica.mjs: the npm socket.io-client, python-socketio (py_client.py, a child
// process) and seed 002's raw WebSocket client. Each one sends `message:send` /
// `message.send` with a fresh client id per message, resends what was not acked when its
// connection dropped (same client id) once reconnected, and records, with the same fields
// whatever the client:
//   connects / disconnects   [{conn, t, reason?}]   conn: 1, then 2 after the first reconnect…
//   queued                   Set of client ids
//   acks                     [{clientMessageId, id, seq, duplicate, conn, t}] every ack, in order
//   acked                    Map client id → its first successful ack
//   nacks                    [{clientMessageId, code, conn, t}] refused sends (retried)
//   receptions               [{id, conversationId, seq, senderId, clientMessageId, createdAt,
//                            conn, phase, t}]
//                            every message received, as received (never de-duplicated);
//                            phase: "replay" before the connection's sync:complete, "live"
//                            after it, "page" when read over REST after a truncated replay,
//                            "unknown" on the raw gateway (no end-of-replay frame)
//   truncated                [{conn, conversationId, t}] replays cut short (more than 100 missed)
// and takes generate(on) (a message every intervalMs, or stop), burst(n), send(id, content)
// and close().
import { spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { reconnectingRawClient } from "./raw-client.mjs";

const PYTHON = process.env.PARLEY_E2E_PYTHON ?? fileURLToPath(new URL("./.venv/bin/python", import.meta.url));
const PY_CLIENT = fileURLToPath(new URL("./py_client.py", import.meta.url));

/** What every client records (see above). */
class Recorder {
  constructor(label, user) {
    Object.assign(this, { label, user, conn: 0, connected: false, synced: false });
    Object.assign(this, { connects: [], disconnects: [], queued: new Set(), acks: [], acked: new Map(), nacks: [], receptions: [], truncated: [] });
  }
  get pending() {
    return [...this.queued].filter((id) => !this.acked.has(id));
  }
  onConnect(extra = {}) {
    this.conn += 1;
    this.connected = true;
    this.synced = false;
    this.connects.push({ conn: this.conn, t: Date.now(), ...extra });
  }
  onSynced() {
    this.synced = true;
  }
  onDisconnect(reason) {
    this.connected = false;
    this.synced = false;
    this.disconnects.push({ conn: this.conn, t: Date.now(), reason });
  }
  onAck(clientMessageId, data) {
    const ack = { clientMessageId, id: data.id, seq: data.seq, duplicate: data.duplicate ?? null, conn: this.conn, t: Date.now() };
    this.acks.push(ack);
    if (!this.acked.has(clientMessageId)) this.acked.set(clientMessageId, ack);
  }
  onReceived(message, phase) {
    const { id, conversationId, seq, senderId, clientMessageId, createdAt } = message;
    this.receptions.push({ id, conversationId, seq, senderId, clientMessageId, createdAt, conn: this.conn, phase, t: Date.now() });
  }
}

/**
 * The sending side of the Node clients: new messages every `intervalMs` while generating,
 * each pending one sent once per connection (`generation`) until acked; a refusal is retried
 * after its `retryAfterMs`. `transmit(clientMessageId, content, generation)` returns false
 * when there is no connection to send on.
 */
class Outbox extends Recorder {
  constructor(label, user, intervalMs) {
    super(label, user);
    Object.assign(this, { intervalMs, generation: 0, counter: 0, timer: null, inFlight: new Map() });
  }
  generate(on) {
    clearInterval(this.timer);
    this.timer = on ? setInterval(() => this.send(`${this.label}-${++this.counter}`, `${this.label} message ${this.counter}`), this.intervalMs) : null;
  }
  /** `n` new messages at once. */
  burst(n) {
    for (let i = 0; i < n; i++) this.send(`${this.label}-${++this.counter}`, `${this.label} message ${this.counter}`);
  }
  send(clientMessageId, content) {
    this.queued.add(clientMessageId);
    this.inFlight.set(clientMessageId, { content, generation: null, retryAt: 0 });
    this.flush();
  }
  flush() {
    for (const [clientMessageId, entry] of this.inFlight) {
      if (entry.generation === this.generation || entry.retryAt > Date.now()) continue;
      if (!this.transmit(clientMessageId, entry.content, this.generation)) return;
      entry.generation = this.generation;
    }
  }
  onConnect(extra) {
    super.onConnect(extra);
    this.flush();
  }
  onDisconnect(reason) {
    super.onDisconnect(reason);
    this.generation += 1; // acks of what is in flight will not come: send it again
  }
  answer(clientMessageId, generation, ack) {
    const entry = this.inFlight.get(clientMessageId);
    if (!entry || entry.generation !== generation) return;
    if (ack?.ok === true) {
      this.inFlight.delete(clientMessageId);
      this.onAck(clientMessageId, ack.data);
      return;
    }
    const retry = ack?.error?.retryAfterMs ?? 200;
    this.nacks.push({ clientMessageId, code: ack?.error?.code ?? String(ack), conn: this.conn, t: Date.now() });
    Object.assign(entry, { generation: null, retryAt: Date.now() + retry });
    setTimeout(() => this.flush(), retry);
  }
}

/**
 * The npm socket.io-client: `socket` as made by multi-replica.mjs's `client()` (reconnecting).
 * A replay cut short (`sync:complete.truncated`) is completed over REST from `baseUrl`, as
 * docs §10.2 tells clients to.
 */
export function socketIoClient(label, user, socket, baseUrl, conversationId, intervalMs) {
  const c = new Outbox(label, user, intervalMs);
  c.transmit = (clientMessageId, content, generation) => {
    if (!socket.connected) return false;
    socket.emit("message:send", { conversationId, content, clientMessageId }, (ack) =>
      c.answer(clientMessageId, generation, { ...ack, data: ack?.data && { ...ack.data, id: ack.data.messageId } }));
    return true;
  };
  socket.on("connect", () => c.onConnect({ sid: socket.id }));
  socket.on("sync:complete", async ({ truncated }) => {
    const conn = c.conn;
    c.onSynced();
    for (const id of truncated) {
      c.truncated.push({ conn, conversationId: id, t: Date.now() });
      let afterSeq = Math.max(0, ...c.receptions.filter((r) => r.conn === conn && r.conversationId === id).map((r) => r.seq));
      for (;;) {
        const response = await fetch(`${baseUrl}/api/conversations/${id}/messages?afterSeq=${afterSeq}&limit=100`, { headers: { authorization: `Bearer ${user.token}` } });
        const page = await response.json();
        for (const message of page.messages) c.onReceived(message, "page");
        if (!page.hasMore || page.messages.length === 0) break;
        afterSeq = page.messages.at(-1).seq;
      }
    }
  });
  socket.on("disconnect", (reason) => c.onDisconnect(reason));
  socket.on("message:received", ({ message }) => c.onReceived(message, c.synced ? "live" : "replay"));
  c.close = async () => {
    c.generate(false);
    socket.close();
  };
  return c;
}

/**
 * Seed 002's raw WebSocket client: a new WebSocket whenever the last one closed
 * (`reconnectingRawClient`), `message.send {tempId}` answered by `message.sent` or
 * `message.error`.
 */
export function rawWsClient(label, user, baseUrl, options, conversationId, intervalMs) {
  const c = new Outbox(label, user, intervalMs);
  let current = null;
  let closing = false;
  c.transmit = (tempId, content) => {
    if (!current || current.socket.readyState !== 1) return false;
    current.send("message.send", { conversationId, type: "text", content, tempId });
    return true;
  };
  const attach = (raw) => {
    current = raw;
    const generation = c.generation;
    c.onConnect();
    c.onSynced();
    const handle = (envelope) => {
      const { type, payload } = envelope;
      if (type === "message.new") c.onReceived(payload.message, "unknown");
      else if (type === "message.sent") {
        const { message } = payload;
        c.answer(payload.tempId, generation, { ok: true, data: { id: message.id, seq: message.seq } });
      } else if (type === "message.error") {
        c.answer(payload.tempId, generation, { ok: false, error: { code: payload.code } });
      }
    };
    // What arrived with the greeting (status.bulk, the start of the replay), then the rest.
    for (const envelope of raw.received.splice(0)) handle(envelope);
    raw.socket.addEventListener("message", (event) => handle(JSON.parse(event.data)));
    raw.closed.then((code) => {
      if (current === raw) current = null;
      c.onDisconnect(`close ${code}`);
      if (!closing) connect();
    });
  };
  const connect = async () => {
    const raw = await reconnectingRawClient(baseUrl, user.token, options, { attempts: 120, delayMs: 250 });
    if (closing) raw.socket.close();
    else attach(raw);
  };
  c.started = connect();
  c.close = async () => {
    closing = true;
    c.generate(false);
    current?.socket.close();
  };
  return c;
}

/** python-socketio, in a child process (py_client.py) driven over its stdin and stdout. */
export function pythonClient(label, user, baseUrl, localAddress, conversationId, intervalMs) {
  const c = new Recorder(label, user);
  const args = [PY_CLIENT, "--url", baseUrl, "--token", user.token, "--conversation", conversationId, "--label", label, "--interval-ms", String(intervalMs)];
  if (localAddress) args.push("--local-address", localAddress);
  if (process.env.PY_CLIENT_DEBUG) args.push("--debug");
  const child = spawn(PYTHON, args, { stdio: ["pipe", "pipe", "pipe"] });
  c.child = child;
  c.stderr = "";
  child.stderr.on("data", (chunk) => (c.stderr += chunk));
  c.exited = new Promise((resolve) => child.on("exit", (code, signal) => resolve({ code, signal })));
  // python-socketio does not reconnect after a "server disconnect" (an Engine.IO close packet
  // or a namespace disconnect): nothing in the test asks for one, so it fails the test at once.
  let hungUp;
  c.hungUp = new Promise((resolve) => (hungUp = resolve));
  createInterface({ input: child.stdout }).on("line", (line) => {
    const event = JSON.parse(line);
    switch (event.ev) {
      case "bye": return;
      case "connected": return c.onConnect({ sid: event.sid, pyT: event.t });
      case "synced": return c.onSynced();
      case "disconnected":
        if (event.reason === "server disconnect") hungUp(event);
        return c.onDisconnect(event.reason);
      case "queued": return c.queued.add(event.clientMessageId);
      case "acked": return c.onAck(event.clientMessageId, event);
      case "nack": return c.nacks.push({ clientMessageId: event.clientMessageId, code: event.code, conn: c.conn, t: Date.now() });
      case "received": return c.onReceived(event, event.phase);
      case "truncated": return c.truncated.push({ conn: c.conn, conversationId: event.conversationId, t: Date.now() });
      case "connect_error": return c.nacks.push({ code: `connect_error ${event.error}`, conn: c.conn, t: Date.now() });
    }
  });
  const command = (cmd) => child.stdin.write(`${JSON.stringify(cmd)}\n`);
  c.generate = (on) => command({ cmd: "generate", on });
  c.send = (clientMessageId, content) => command({ cmd: "send", clientMessageId, content });
  c.burst = (n) => command({ cmd: "burst", n });
  c.close = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    command({ cmd: "quit" });
    const timer = setTimeout(() => child.kill("SIGKILL"), 5000);
    await c.exited;
    clearTimeout(timer);
  };
  return c;
}
