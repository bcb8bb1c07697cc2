#!/usr/bin/env python3
"""A client host's program: it runs the host's checks when labctl asks, so a check starts
no process in the host (a `docker exec` costs a process, a Python start-up and the engine's
work for each client, every time).

labctl attaches to the host's standard input and output through the engine and writes one
request per line: {"id": ID, "specs": [...]} (the specs of services/probe.py). The agent
answers on one line: "agent ID " and the observations as JSON. A line it cannot read (too
long, not JSON, or two requests written over each other) is answered "agent ! " and why:
whoever is waiting then runs its checks through `docker exec` instead.

One request at a time, each in a child process forked for it: what the checks used (their
threads, TLS, buffers) goes back when the child ends, so between checks the agent holds
little more than an idle Python. Idle, it waits on its input and uses no CPU. If its input
closes (an engine that gives it none), it goes on sleeping like the `sleep infinity` it
stands for. Standard library only.
"""

from __future__ import annotations

import os
import signal
import sys

MAX_REQUEST = 4 << 20   # bytes in one request line


def answer(request_id: str, body: bytes) -> None:
    data = b"agent " + request_id.encode() + b" " + body + b"\n"
    while data:
        data = data[os.write(1, data):]


def serve(line: bytes) -> None:
    import json
    import probe  # beside this file: services/probe.py
    try:
        request = json.loads(line)
        request_id, specs = str(request["id"]), request["specs"]
        if not request_id.isalnum() or not isinstance(specs, list):
            raise ValueError("a request is {id, specs}")
    except (ValueError, KeyError, TypeError) as exc:
        answer("!", json.dumps(f"unreadable request: {exc}"[:200]).encode())
        return
    probe.import_what_is_needed(specs)
    answer(request_id, json.dumps(probe.run_all(specs)).encode())


def main() -> int:
    source = sys.stdin.buffer
    while True:
        line = source.readline(MAX_REQUEST)
        if not line:
            break
        if not line.endswith(b"\n"):
            while line and not line.endswith(b"\n"):  # the rest of an overlong line
                line = source.readline(MAX_REQUEST)
            answer("!", b'"the request is longer than the agent reads"')
            continue
        try:
            child = os.fork()
        except OSError as exc:  # the host is at its process limit: exec may fare no better
            answer("!", f'"cannot fork: {exc.strerror}"'.encode())
            continue
        if child == 0:
            try:
                serve(line)
            finally:
                os._exit(0)
        os.waitpid(child, 0)
    while True:
        signal.pause()


if __name__ == "__main__":
    sys.exit(main())
