// Helpers shared by the e2e tests: REST calls with fetch, and socket.io-client sockets
// that resolve once Parley has authenticated them and finished the replay.
import { io } from "socket.io-client";

export const BASE = process.env.PARLEY_URL ?? "http://127.0.0.1:3000";
export const WAIT_MS = 5000;

export async function api(path, { method = "GET", token, body } = {}) {
  const headers = {};
  if (token) headers.authorization = `Bearer ${token}`;
  if (body !== undefined) headers["content-type"] = "application/json";
  const response = await fetch(`${BASE}${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : null };
}

export async function register(name) {
  const email = `${name.toLowerCase()}.${crypto.randomUUID().slice(0, 8)}@example.com`;
  const reply = await api("/api/auth/register", { method: "POST", body: { email, password: "correct horse battery", displayName: name } });
  if (reply.status !== 201) throw new Error(`register ${name}: ${reply.status} ${JSON.stringify(reply.body)}`);
  return { ...reply.body.user, token: reply.body.accessToken };
}

/** Resolves with the first `event` the socket receives, or rejects after `ms`. */
export function waitFor(socket, event, ms = WAIT_MS) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${event} within ${ms} ms`)), ms);
    socket.once(event, (payload) => {
      clearTimeout(timer);
      resolve(payload);
    });
  });
}

/** A socket on /chat, resolved after `auth:success` and `sync:complete`. */
export async function connect(token, options = {}) {
  const socket = io(`${BASE}/chat`, { auth: { token }, reconnection: false, ...options });
  const ready = Promise.all([waitFor(socket, "auth:success"), waitFor(socket, "sync:complete")]);
  const [success, summary] = await ready;
  return { socket, success, summary };
}

export function emitWithAck(socket, event, payload, ms = WAIT_MS) {
  return socket.timeout(ms).emitWithAck(event, payload);
}
