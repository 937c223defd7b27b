// Helpers for conformance.test.mjs: raw Engine.IO over long-polling (fetch) and websocket
// (npm ws), so the tests can look at the exact packets Parley's Socket.IO stack sends.
import { WebSocket } from "ws";

/** `parley conformance` (e2e/run.sh starts it and sets the variable). */
export const BASE = process.env.PARLEY_CONFORMANCE_URL;
/** The same server behind nginx with nginx/parley.conf's /socket.io/ block, when nginx is installed. */
export const NGINX_BASE = process.env.PARLEY_CONFORMANCE_NGINX_URL;

export const PING_INTERVAL = 300;
export const PING_TIMEOUT = 200;
export const CONNECT_TIMEOUT = 1000;
export const MAX_PAYLOAD = 1_000_000;
/** Engine.IO v4 separates the packets of one long-polling payload with a record separator. */
export const SEP = "\x1e";

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** The Engine.IO endpoint with the given query (`base` defaults to the conformance server). */
export function endpoint(query, base = BASE) {
  return `${base}/socket.io/?${query}`;
}

export function wsEndpoint(query, base = BASE) {
  return endpoint(query, base).replace(/^http/, "ws");
}

/** Opens a long-polling session; resolves with the handshake object (sid, upgrades, ...). */
export async function openPolling(base = BASE, headers = {}) {
  const response = await fetch(endpoint("EIO=4&transport=polling", base), { headers });
  const body = await response.text();
  if (response.status !== 200 || !body.startsWith("0")) throw new Error(`handshake: ${response.status} ${body}`);
  return { ...JSON.parse(body.slice(1)), response };
}

/**
 * A long-polling session whose first ping (engineioxide sends it right after the handshake)
 * was answered, so the next poll holds what the test causes.
 */
export async function openPollingSession(base = BASE) {
  const handshake = await openPolling(base);
  const { status, body } = await poll(handshake.sid, base);
  if (status !== 200 || body !== "2") throw new Error(`first poll: ${status} ${body}`);
  await push(handshake.sid, "3", base);
  return handshake;
}

/** One long-polling GET: { status, body }. */
export async function poll(sid, base = BASE) {
  const response = await fetch(endpoint(`EIO=4&transport=polling&sid=${sid}`, base));
  return { status: response.status, body: await response.text() };
}

/** One long-polling POST: { status, body }. */
export async function push(sid, body, base = BASE) {
  const response = await fetch(endpoint(`EIO=4&transport=polling&sid=${sid}`, base), { method: "POST", body });
  return { status: response.status, body: await response.text() };
}

/**
 * Polls until `count` packets other than pings arrived (pings are answered with a pong),
 * resolving with those packets and the raw payloads they came in.
 */
export async function pollPackets(sid, count, base = BASE) {
  const packets = [];
  const payloads = [];
  while (packets.length < count) {
    const { status, body } = await poll(sid, base);
    if (status !== 200) throw new Error(`poll: ${status} ${body}`);
    payloads.push(body);
    for (const packet of body.split(SEP)) {
      if (packet === "2") await push(sid, "3", base);
      else packets.push(packet);
    }
  }
  return { packets, payloads };
}

/**
 * A raw websocket with a queue of received messages (strings for text frames, Buffers for
 * binary frames). Pings ("2") are answered with "3" and kept out of the queue; `pong` may be
 * false (never answer) or a number (answer that many, then stop); `{ keepPings: true }`
 * queues them like any message. `pings` holds when each ping arrived, `pongs` each answer.
 */
export class RawSocket {
  /** Every socket opened, so a test file can close what a failed test left open. */
  static all = new Set();

  static closeAll() {
    for (const socket of RawSocket.all) socket.ws.terminate();
    RawSocket.all.clear();
  }

  constructor(url, { pong = true, keepPings = false } = {}) {
    this.ws = new WebSocket(url);
    RawSocket.all.add(this);
    this.queue = [];
    this.waiters = [];
    this.pings = [];
    this.pongs = [];
    let pongsLeft = pong === true ? Infinity : pong === false ? 0 : pong;
    this.opened = new Promise((resolve, reject) => {
      this.ws.once("open", resolve);
      this.ws.once("unexpected-response", (_req, res) => reject(Object.assign(new Error(`HTTP ${res.statusCode}`), { status: res.statusCode })));
      this.ws.once("error", reject);
    });
    this.opened.catch(() => {});
    this.closed = new Promise((resolve) => {
      this.ws.once("close", (code, reason) => {
        this.closedAt = Date.now();
        resolve({ code, reason: reason.toString() });
        for (const waiter of this.waiters.splice(0)) waiter.reject(new Error(`closed (${code}) while waiting`));
      });
    });
    this.ws.on("error", () => {});
    this.ws.on("message", (data, isBinary) => {
      const message = isBinary ? Buffer.from(data) : data.toString();
      if (message === "2" && !keepPings) {
        this.pings.push(Date.now());
        if (pongsLeft-- > 0) {
          this.ws.send("3");
          this.pongs.push(Date.now());
        }
        return;
      }
      const waiter = this.waiters.shift();
      if (waiter) waiter.resolve(message);
      else this.queue.push(message);
    });
  }

  /** The next queued message; rejects after `ms` or when the socket closes first. */
  next(ms = 3000) {
    if (this.queue.length) return Promise.resolve(this.queue.shift());
    if (this.closedAt) return Promise.reject(new Error("socket closed"));
    return new Promise((resolve, reject) => {
      const waiter = {
        resolve: (m) => (clearTimeout(timer), resolve(m)),
        reject: (e) => (clearTimeout(timer), reject(e)),
      };
      const timer = setTimeout(() => {
        this.waiters.splice(this.waiters.indexOf(waiter), 1);
        reject(new Error(`no message within ${ms} ms`));
      }, ms);
      this.waiters.push(waiter);
    });
  }

  /** The next `count` messages. */
  async take(count, ms) {
    const out = [];
    for (let i = 0; i < count; i++) out.push(await this.next(ms));
    return out;
  }

  send(data) {
    this.ws.send(data);
  }

  close() {
    this.ws.close();
  }

  /** Resolves with the close event, or rejects if the server keeps the socket open `ms`. */
  closedWithin(ms) {
    return Promise.race([this.closed, sleep(ms).then(() => Promise.reject(new Error(`still open after ${ms} ms`)))]);
  }
}

/** A websocket session past the Engine.IO handshake: { socket, handshake }. */
export async function openWebsocket(options, base = BASE) {
  const socket = new RawSocket(wsEndpoint("EIO=4&transport=websocket", base), options);
  const first = await socket.next();
  if (!first.startsWith("0")) throw new Error(`handshake: ${first}`);
  return { socket, handshake: JSON.parse(first.slice(1)) };
}

/** A websocket joined to `nsp` ("/" or "/custom"), with the CONNECT reply and `auth` consumed. */
export async function joinedWebsocket(nsp = "/", base = BASE) {
  const { socket } = await openWebsocket({}, base);
  const prefix = nsp === "/" ? "" : `${nsp},`;
  socket.send(`40${prefix}`);
  const [connect, auth] = await socket.take(2);
  if (!connect.startsWith(`40${prefix}`) || !auth.startsWith(`42${prefix}["auth"`)) throw new Error(`join: ${connect} ${auth}`);
  return socket;
}
