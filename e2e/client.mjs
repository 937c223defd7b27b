// One chat participant as its own process, like a browser tab: connects with
// socket.io-client and prints what happens as JSON lines on stdout.
//   node client.mjs receive <token> <count>       wait for <count> message:received, then
//                                                 for a line on stdin before closing
//   node client.mjs send <token> <conversationId> <text> [transport]
import { once } from "node:events";
import { createInterface } from "node:readline";
import { connect, emitWithAck, waitFor } from "./lib.mjs";

const [role, token, ...rest] = process.argv.slice(2);
const print = (kind, payload) => console.log(JSON.stringify({ kind, payload }));

async function receive(count) {
  const { socket, summary } = await connect(token);
  print("ready", summary);
  for (let i = 0; i < Number(count); i++) {
    print("message:received", await waitFor(socket, "message:received"));
  }
  // Closes when told to, as a reader closes a tab some time after reading, not in the same
  // millisecond: a socket whose last close overlaps the message's broadcast cannot be vouched
  // for, and the server replays that message rather than risk skipping it.
  await once(createInterface({ input: process.stdin }), "line");
  socket.close();
}

async function send(conversationId, content, transport) {
  const transports = transport ? [transport] : undefined;
  const { socket } = await connect(token, transports ? { transports } : {});
  const clientMessageId = crypto.randomUUID();
  const sent = waitFor(socket, "message:sent");
  const ack = await emitWithAck(socket, "message:send", { conversationId, content, clientMessageId });
  print("ack", ack);
  print("message:sent", await sent);
  socket.close();
}

try {
  if (role === "receive") await receive(rest[0]);
  else if (role === "send") await send(rest[0], rest[1], rest[2]);
  else throw new Error(`unknown role ${role}`);
  process.exit(0);
} catch (err) {
  print("error", String(err));
  process.exit(1);
}
