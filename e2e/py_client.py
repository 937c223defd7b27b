"""A Parley chat client on python-socketio (PyPI), driven by the rolling-restart e2e test
(e2e/multi-replica.mjs, which e2e/multi-replica.sh runs with e2e/.venv's python).

It connects to /chat with ``auth={"token": ...}`` over websocket, and relies on
python-socketio's own reconnection after the transport drops (Parley's drain cuts the
Engine.IO connection without a close packet, docs/websocket-protocol.md §3.9). It sends
``message:send`` with a fresh ``clientMessageId`` per message and waits for the ack; what was
not acked when the connection dropped is sent again, with the same ``clientMessageId``, once
reconnected. Every ``message:received`` is reported as it arrives (no de-duplication here:
the test counts receptions).

Commands, one JSON object per line on stdin:
  {"cmd": "generate", "on": true|false}   start / stop sending a message every --interval-ms
  {"cmd": "send", "clientMessageId": "...", "content": "..."}   one message (a marker)
  {"cmd": "burst", "n": 10}                n new messages at once
  {"cmd": "quit"}                          disconnect and exit

Reports, one JSON object per line on stdout, each with ``t`` (ms since the epoch) and ``conn``
(1 for the first connection, 2 after the first reconnect, ...):
  {"ev": "connected", "sid"}            namespace /chat connected
  {"ev": "auth", "userId"}              auth:success
  {"ev": "synced", "messages"}          sync:complete (the replay is over)
  {"ev": "disconnected", "reason"}      python-socketio's disconnect reason
  {"ev": "connect_error", "error"}
  {"ev": "queued", "clientMessageId"}   a new message to send
  {"ev": "acked", "clientMessageId", "id", "seq", "duplicate"}
  {"ev": "nack", "clientMessageId", "code", "retryAfterMs"}
  {"ev": "received", "id", "conversationId", "seq", "senderId", "clientMessageId", "createdAt", "phase"}
      phase: "replay" before this connection's sync:complete, "page" when read over REST
      after a truncated replay (docs §10.2), else "live"
  {"ev": "truncated", "conversationId"}   sync:complete listed it: the rest is paged over REST
  {"ev": "bye"}
"""

import argparse
import asyncio
import json
import sys
import time

import aiohttp
import socketio

NAMESPACE = "/chat"


def now_ms():
    return int(time.time() * 1000)


class Client:
    def __init__(self, args):
        self.args = args
        self.conn = 0
        self.phase = "replay"
        self.generation = 0  # bumped on every disconnect: acks of older sends never come
        self.generating = False
        self.counter = 0
        # clientMessageId -> {"content", "sent_gen", "retry_at"}; in send order
        self.pending = {}
        self.kick = asyncio.Event()
        self.replayed = []  # (conversationId, seq, conn) of the replayed messages
        self.tasks = set()
        local = args.local_address

        def http_session():
            # Every (re)connection gets a new session (python-engineio closes the old one),
            # bound to the source address that nginx hashes onto the replica wanted.
            connector = aiohttp.TCPConnector(local_addr=(local, 0)) if local else None
            return aiohttp.ClientSession(connector=connector)

        # python-socketio's default reconnection (reconnection=True, delays 1 s doubling up
        # to 5 s, ±50 %), nothing tuned.
        debug = args.debug  # python-socketio's and python-engineio's own logs, on stderr
        self.sio = socketio.AsyncClient(
            http_session=http_session, handle_sigint=False, logger=debug, engineio_logger=debug
        )
        self.sio.on("connect", self.on_connect, namespace=NAMESPACE)
        self.sio.on("disconnect", self.on_disconnect, namespace=NAMESPACE)
        self.sio.on("connect_error", self.on_connect_error, namespace=NAMESPACE)
        self.sio.on("auth:success", self.on_auth, namespace=NAMESPACE)
        self.sio.on("sync:complete", self.on_synced, namespace=NAMESPACE)
        self.sio.on("message:received", self.on_received, namespace=NAMESPACE)

    def report(self, ev, **fields):
        line = {"ev": ev, "t": now_ms(), "conn": self.conn, **fields}
        sys.stdout.write(json.dumps(line) + "\n")
        sys.stdout.flush()

    # Handlers: plain functions, so they run in packet order with no await in between.
    def on_connect(self):
        self.conn += 1
        self.phase = "replay"
        self.report("connected", sid=self.sio.get_sid(NAMESPACE))
        self.kick.set()

    def on_disconnect(self, reason=None):
        self.generation += 1
        self.report("disconnected", reason=str(reason))

    def on_connect_error(self, data=None):
        self.report("connect_error", error=str(data))

    def on_auth(self, data):
        self.report("auth", userId=(data or {}).get("userId"))

    def on_synced(self, data):
        self.phase = "live"
        self.report("synced", messages=(data or {}).get("messages"))
        # More than 100 missed in a conversation: the rest is paged over REST (docs §10.2).
        for conversation_id in (data or {}).get("truncated") or []:
            self.report("truncated", conversationId=conversation_id)
            after = max([seq for c, seq, conn in self.replayed if c == conversation_id and conn == self.conn] or [0])
            task = asyncio.get_running_loop().create_task(self.page(conversation_id, after))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def page(self, conversation_id, after):
        headers = {"Authorization": f"Bearer {self.args.token}"}
        async with aiohttp.ClientSession() as http:
            while True:
                url = f"{self.args.url}/api/conversations/{conversation_id}/messages?afterSeq={after}&limit=100"
                async with http.get(url, headers=headers) as response:
                    page = await response.json()
                for message in page["messages"]:
                    self.report_message(message, "page")
                if not page.get("hasMore") or not page["messages"]:
                    return
                after = page["messages"][-1]["seq"]

    def on_received(self, data):
        message = (data or {}).get("message") or {}
        if self.phase == "replay":
            self.replayed.append((message.get("conversationId"), message.get("seq"), self.conn))
        self.report_message(message, self.phase)

    def report_message(self, message, phase):
        self.report(
            "received",
            id=message.get("id"),
            conversationId=message.get("conversationId"),
            seq=message.get("seq"),
            senderId=message.get("senderId"),
            clientMessageId=message.get("clientMessageId"),
            createdAt=message.get("createdAt"),
            phase=phase,
        )

    def queue(self, client_message_id, content):
        self.pending[client_message_id] = {"content": content, "sent_gen": None, "retry_at": 0}
        self.report("queued", clientMessageId=client_message_id)
        self.kick.set()

    def on_ack(self, client_message_id, generation, ack):
        entry = self.pending.get(client_message_id)
        if entry is None or entry["sent_gen"] != generation:
            return
        if isinstance(ack, dict) and ack.get("ok") is True:
            data = ack["data"]
            del self.pending[client_message_id]
            self.report(
                "acked",
                clientMessageId=client_message_id,
                id=data["messageId"],
                seq=data["seq"],
                duplicate=data.get("duplicate"),
            )
        else:
            error = (ack or {}).get("error", {}) if isinstance(ack, dict) else {}
            retry = (ack or {}).get("retryAfterMs") if isinstance(ack, dict) else None
            retry = error.get("retryAfterMs", retry) or 200
            entry["sent_gen"] = None
            entry["retry_at"] = now_ms() + retry
            self.report("nack", clientMessageId=client_message_id, code=error.get("code"), retryAfterMs=retry)
        self.kick.set()

    async def flush(self):
        """Sends every pending message not in flight on the current connection."""
        if NAMESPACE not in self.sio.namespaces:
            return
        generation = self.generation
        for client_message_id, entry in list(self.pending.items()):
            if entry["sent_gen"] == generation or entry["retry_at"] > now_ms():
                continue
            entry["sent_gen"] = generation
            payload = {
                "conversationId": self.args.conversation,
                "content": entry["content"],
                "clientMessageId": client_message_id,
            }
            try:
                await self.sio.emit(
                    "message:send",
                    payload,
                    namespace=NAMESPACE,
                    callback=lambda ack=None, c=client_message_id, g=generation: self.on_ack(c, g, ack),
                )
            except socketio.exceptions.BadNamespaceError:
                entry["sent_gen"] = None  # disconnected meanwhile: sent again on reconnect
                return

    async def sender(self):
        next_at = time.monotonic()
        interval = self.args.interval_ms / 1000
        while True:
            timeout = max(0.0, next_at - time.monotonic()) if self.generating else 0.1
            try:
                await asyncio.wait_for(self.kick.wait(), timeout)
            except asyncio.TimeoutError:
                pass
            self.kick.clear()
            if self.generating and time.monotonic() >= next_at:
                self.counter += 1
                self.queue(f"{self.args.label}-{self.counter}", f"{self.args.label} message {self.counter}")
                next_at += interval
                if next_at < time.monotonic():
                    next_at = time.monotonic() + interval
            await self.flush()

    async def commands(self):
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        while True:
            line = await reader.readline()
            if not line:
                return
            command = json.loads(line)
            if command["cmd"] == "generate":
                self.generating = bool(command["on"])
                self.kick.set()
            elif command["cmd"] == "send":
                self.queue(command["clientMessageId"], command["content"])
            elif command["cmd"] == "burst":
                for _ in range(command["n"]):
                    self.counter += 1
                    self.queue(f"{self.args.label}-{self.counter}", f"{self.args.label} message {self.counter}")
            elif command["cmd"] == "quit":
                return

    async def run(self):
        await self.sio.connect(
            self.args.url,
            auth={"token": self.args.token},
            transports=["websocket"],
            namespaces=[NAMESPACE],
            wait_timeout=10,
        )
        sender = asyncio.create_task(self.sender())
        await self.commands()
        sender.cancel()
        await self.sio.disconnect()
        self.report("bye")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True, help="http://host:port (nginx)")
    parser.add_argument("--token", required=True)
    parser.add_argument("--conversation", required=True)
    parser.add_argument("--label", required=True, help="prefix of the clientMessageIds")
    parser.add_argument("--interval-ms", type=int, default=80)
    parser.add_argument("--local-address", default=None)
    parser.add_argument("--debug", action="store_true", help="python-socketio's logs on stderr")
    asyncio.run(Client(parser.parse_args()).run())


if __name__ == "__main__":
    main()
