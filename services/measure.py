#!/usr/bin/env python3
"""Measure what the network does, from inside a lab host; prints one JSON value.

  measure.py rtt ADDRESS PORT COUNT    round-trip times (s) of COUNT one-byte exchanges on
                                       one TCP connection to an echo server
  measure.py udp ADDRESS PORT COUNT    send COUNT numbered datagrams 1ms apart to a UDP echo
                                       server; the numbers of the replies, in arrival order
  measure.py bulk ADDRESS PORT BYTES   send BYTES random bytes through a TCP echo server and
                                       read them back: seconds, intact, local port, sha256

The tests and `make bench` use it to compare impairments with what was declared.
Standard library only.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import sys
import threading
import time

from inet import family_of  # beside this file


def rtt(address: str, port: int, count: int) -> list[float]:
    sock = socket.create_connection((address, port), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    times = []
    for _ in range(count):
        started = time.perf_counter()
        sock.sendall(b"x")
        sock.recv(1)
        times.append(time.perf_counter() - started)
    return times


def udp(address: str, port: int, count: int) -> list[int]:
    sock = socket.socket(family_of(address), socket.SOCK_DGRAM)
    sock.connect((address, port))
    sock.settimeout(1.0)
    order: list[int] = []

    def read() -> None:
        # Replies are read as they come: a socket buffer left to fill would drop them.
        try:
            while True:
                order.append(int(sock.recv(64)))
        except socket.timeout:
            pass
    reader = threading.Thread(target=read)
    reader.start()
    for number in range(count):
        sock.send(b"%06d" % number)
        time.sleep(0.001)
    reader.join()
    return order


def bulk(address: str, port: int, size: int) -> dict:
    data = os.urandom(size)
    sock = socket.create_connection((address, port), timeout=60)
    back = bytearray()

    def read() -> None:
        # Until the server's EOF, not until the last byte: the echo server writes its
        # transcript entry before it closes, so a caller can read that entry at once.
        while chunk := sock.recv(65536):
            back.extend(chunk)
    reader = threading.Thread(target=read)
    started = time.perf_counter()
    reader.start()
    sock.sendall(data)
    sock.shutdown(socket.SHUT_WR)
    reader.join()
    seconds = time.perf_counter() - started
    port = sock.getsockname()[1]
    sock.close()
    return {"seconds": seconds, "intact": bytes(back) == data, "port": port,
            "sha256": hashlib.sha256(data).hexdigest()}


if __name__ == "__main__":
    if len(sys.argv) != 5 or sys.argv[1] not in ("rtt", "udp", "bulk"):
        sys.exit(__doc__)
    verb, address, port, amount = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    print(json.dumps({"rtt": rtt, "udp": udp, "bulk": bulk}[verb](address, port, amount)))
