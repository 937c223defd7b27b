#!/usr/bin/env python3
"""Unread counts for a user in 1,000 conversations: sets up the data through the REST API,
then times GET /api/conversations/unread-count and GET /api/conversations.

Usage: bench/unread_1000.py [base_url] [conversations] [requests]
Run the server with MESSAGE_RATE_PER_MIN high enough for the setup (e.g. 1000000).
"""
import json
import statistics
import sys
import time
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor

BASE = sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:3000"
CONVERSATIONS = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
REQUESTS = int(sys.argv[3]) if len(sys.argv) > 3 else 200


def call(method, path, token=None, body=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(BASE + path, data=data, method=method)
    request.add_header("content-type", "application/json")
    if token:
        request.add_header("authorization", f"Bearer {token}")
    with urllib.request.urlopen(request) as response:
        return json.loads(response.read() or b"null")


def register(name):
    email = f"{name}.{uuid.uuid4().hex[:8]}@example.com"
    reply = call("POST", "/api/auth/register", body={"email": email, "password": "correct horse battery", "displayName": name})
    return reply["user"]["id"], reply["accessToken"]


def main():
    me, my_token = register("reader")
    _, peer_token = register("writer")
    peer_id = call("GET", "/api/auth/me", peer_token)["id"]

    def one(i):
        conversation = call("POST", "/api/conversations", my_token, {"type": "group", "title": f"g{i}", "participantIds": [peer_id]})
        for n in range(2):
            call("POST", f"/api/conversations/{conversation['id']}/messages", peer_token,
                 {"clientMessageId": f"{i}-{n}", "content": "unread"})

    started = time.time()
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(one, range(CONVERSATIONS)))
    print(f"setup: {CONVERSATIONS} conversations, {2 * CONVERSATIONS} messages in {time.time() - started:.1f} s")

    for path in ["/api/conversations/unread-count", "/api/conversations?limit=50"]:
        timings = []
        for _ in range(REQUESTS):
            t0 = time.perf_counter()
            body = call("GET", path, my_token)
            timings.append((time.perf_counter() - t0) * 1000)
        timings.sort()
        if "unread" in path:
            assert body["total"] == 2 * CONVERSATIONS, body["total"]
        p = lambda q: timings[min(len(timings) - 1, int(q * len(timings)))]
        print(f"GET {path}: n={REQUESTS} p50={p(0.5):.2f} ms p99={p(0.99):.2f} ms mean={statistics.mean(timings):.2f} ms")


if __name__ == "__main__":
    main()
