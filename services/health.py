#!/usr/bin/env python3
"""Readiness probe of a host's built-in servers: `health.py tcp:7 udp:7 tcp:8080` exits 0
when every TCP port accepts a connection on loopback and every UDP echo answers; else it
says which do not, on stderr, and exits 1. Run once: by `up` (tried until it passes) and
by `status` when asked, never on an interval. Standard library only, no site import."""

import socket
import sys

TOKEN = b"labctl-health"


def ready(spec: str) -> bool:
    transport, _, port_text = spec.partition(":")
    port = int(port_text)
    if transport in ("raw", "udp-listener"):  # listeners answer nothing; they listen once labsvc serves
        return True
    try:
        if transport == "tcp":
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return True
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(1)
            sock.connect(("127.0.0.1", port))
            sock.send(TOKEN)
            return sock.recv(64) == TOKEN
    except OSError:
        return False


if __name__ == "__main__":
    silent = [spec for spec in sys.argv[1:] if not ready(spec)]
    if silent:
        print("no answer on " + ", ".join(silent), file=sys.stderr)
    sys.exit(1 if silent else 0)
