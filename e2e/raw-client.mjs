// Seed 002 §13's client, without React: a plain WebSocket (the npm `ws`, with the browser's
// API) at /chat/ws?token=, JSON envelopes {type, payload} both ways.
import WebSocket from "ws";

export const RAW_WAIT_MS = 5000;

/**
 * A raw client on `baseUrl` (http://host:port) as `token`; `options` go to the `ws`
 * constructor (e.g. `localAddress`). `next(type)` takes the next envelope of that type.
 */
export function rawClient(baseUrl, token, options = {}) {
  const socket = new WebSocket(`${baseUrl.replace(/^http/, "ws")}/chat/ws?token=${token}`, options);
  const received = [];
  const waiters = [];
  socket.onmessage = (event) => {
    received.push(JSON.parse(event.data));
    for (const waiter of [...waiters]) waiter();
  };
  const closed = new Promise((resolve) => socket.addEventListener("close", (event) => resolve(event.code)));
  // A failed upgrade (say, a 502 from a proxy) is an error event followed by a close: the
  // caller sees the close, as a browser's onclose.
  socket.addEventListener("error", () => {});
  /** The next envelope of `type` not taken yet. */
  const next = (type, ms = RAW_WAIT_MS) =>
    new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        waiters.splice(waiters.indexOf(check), 1);
        reject(new Error(`no ${type} within ${ms} ms: ${JSON.stringify(received)}`));
      }, ms);
      const check = () => {
        const index = received.findIndex((m) => m.type === type);
        if (index < 0) return;
        const [message] = received.splice(index, 1);
        waiters.splice(waiters.indexOf(check), 1);
        clearTimeout(timer);
        resolve(message);
      };
      waiters.push(check);
      check();
    });
  const send = (type, payload) => socket.send(JSON.stringify({ type, payload }));
  return { socket, next, send, received, closed };
}

/**
 * Seed 002 §13's reconnect: a new WebSocket whenever the last one closed, until one is
 * greeted with `connection.success` (here every `delayMs` instead of the seed's 3 s).
 */
export async function reconnectingRawClient(baseUrl, token, options = {}, { attempts = 20, delayMs = 250 } = {}) {
  for (let attempt = 1; ; attempt++) {
    const client = rawClient(baseUrl, token, options);
    const greeted = await Promise.race([
      client.next("connection.success", 10000).then(() => true, () => false),
      client.closed.then(() => false),
    ]);
    if (greeted) return client;
    client.socket.terminate();
    if (attempt >= attempts) throw new Error(`no connection.success after ${attempts} attempts`);
    await new Promise((resolve) => setTimeout(resolve, delayMs));
  }
}
