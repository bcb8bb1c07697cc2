#!/usr/bin/env python3
"""Abuse for the built-in servers, run inside a lab host against another lab host only.
Every attack is bounded in connections, bytes and time, and prints JSON lines: progress
lines the test waits on ({"event": "ready"}), then one summary ({"event": "done", ...}).

  attack.py hold HOST PORT KIND N CONTROL_PORT MAX_SECONDS
      open N connections and hold them, idle (KIND tcp|http) or with a half-sent opening
      (KIND tls: a TLS record header and nothing more; tls-hello: a whole ClientHello and
      nothing more; KIND http-partial: a request head without its end). Ends when all were closed by the server, when something connects
      to 127.0.0.1:CONTROL_PORT, or after MAX_SECONDS. Reports when the server closed them.
  attack.py line HOST PORT KIND MEGABYTES MAX_SECONDS
      one connection that sends MEGABYTES MiB with no newline (KIND tcp|tls), or as an HTTP
      request line / header (KIND http-line|http-header|https-line|https-header), reading
      whatever comes back meanwhile.
  attack.py length HOST PORT KIND VALUE MEGABYTES MAX_SECONDS
      POST /echo with Content-Length: VALUE (KIND http|https), then up to MEGABYTES MiB of
      body while reading the answer.
  attack.py udp-flood HOST PORT COUNT SIZE
      COUNT datagrams of SIZE bytes as fast as the socket takes them; counts the echoes.
  attack.py udp-from HOST PORT SOURCE_PORT PAYLOAD WAIT
      one datagram from SOURCE_PORT; reports whether an echo came within WAIT seconds.
  attack.py dns-response HOST PORT WAIT
      an unsolicited DNS response (the QR bit set) from an ordinary port, then a query from
      the same port; reports what came back to each within WAIT seconds.
  attack.py spoof HOST PORT SOURCE SOURCE_PORT KIND
      one DNS message (KIND query|response) to HOST:PORT that claims to come from
      SOURCE:SOURCE_PORT: an IPv4 packet written whole on a raw socket (NET_RAW is one of
      Docker's default capabilities).
  attack.py paced HOST PORT COUNT GAP
      one tcp connection sending one byte every GAP seconds, COUNT times; all must echo.
  attack.py concurrent HOST PORT N
      N connections at once, each sends a line and half-closes; counts full echoes.
"""

from __future__ import annotations

import json
import os
import resource
import selectors
import socket
import ssl
import struct
import sys
import time

CA = os.environ.get("ATTACK_CA", "/opt/labctl/pki/ca.pem")


def say(**fields) -> None:
    print(json.dumps(fields), flush=True)


def more_files() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 65536), hard))


def tls_client(sock: socket.socket, host: str) -> ssl.SSLSocket:
    context = ssl.create_default_context(cafile=CA)
    return context.wrap_socket(sock, server_hostname=host)


def client_hello(host: str) -> bytes:
    context = ssl.create_default_context(cafile=CA)
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    client = context.wrap_bio(incoming, outgoing, server_hostname=host)
    try:
        client.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return outgoing.read()


def hold(host: str, port: int, kind: str, count: int, control_port: int, max_seconds: float) -> None:
    more_files()
    control = socket.create_server(("127.0.0.1", control_port))
    control.setblocking(False)
    selector = selectors.DefaultSelector()
    selector.register(control, selectors.EVENT_READ, None)
    opened: dict[socket.socket, float] = {}
    refused = 0
    opening = {"tls": b"\x16\x03\x01\x02\x00",  # a handshake record of 512 bytes, never sent
               "tls-hello": client_hello(host),  # a whole ClientHello, then silence
               "http-partial": b"GET / HTTP/1.1\r\nHost: " + host.encode() + b"\r\n"}.get(kind, b"")
    for _ in range(count):
        try:
            sock = socket.create_connection((host, port), timeout=5)
        except OSError:
            refused += 1
            continue
        if opening:
            sock.sendall(opening)
        sock.setblocking(False)
        opened[sock] = time.monotonic()
        selector.register(sock, selectors.EVENT_READ, "attack")
    say(event="ready", opened=len(opened), refused=refused)
    closed_after: list[float] = []
    answers: dict[str, int] = {}
    deadline = time.monotonic() + max_seconds
    stopped = False
    while len(closed_after) < len(opened) and not stopped:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        for key, _mask in selector.select(remaining):
            if key.data is None:
                stopped = True
                continue
            sock = key.fileobj
            try:
                data = sock.recv(65536)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            if data:  # an answer before the close (HTTP 408); note its status line
                first = data.split(b"\r\n", 1)[0].decode("latin-1")[:40]
                answers[first] = answers.get(first, 0) + 1
                continue
            closed_after.append(time.monotonic() - opened[sock])
            selector.unregister(sock)
            sock.close()
    for sock in opened:
        sock.close()
    say(event="done", opened=len(opened), refused=refused, closed_by_server=len(closed_after),
        first_close=round(min(closed_after), 3) if closed_after else None,
        last_close=round(max(closed_after), 3) if closed_after else None,
        answers=answers, stopped=stopped)


def pump(conn, payload_size: int, chunk: bytes, max_seconds: float, prefix: bytes = b"",
         echo: bool = False) -> dict:
    """Send prefix then payload_size bytes of chunk while reading what comes back, until
    the server closes, or (echo) everything came back, or max_seconds pass."""
    started = time.monotonic()
    conn.setblocking(False)
    pending = memoryview(prefix)
    to_send = payload_size
    state = {"sent": 0, "received": 0, "first": b"", "ended": None, "ready": False}
    selector = selectors.DefaultSelector()
    selector.register(conn, selectors.EVENT_READ | selectors.EVENT_WRITE)

    def read_all() -> None:
        while state["ended"] is None:
            try:
                data = conn.recv(65536)
            except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
                return
            except (OSError, ssl.SSLError) as exc:
                state["ended"] = f"read: {exc.__class__.__name__}"
                return
            if not data:
                state["ended"] = "the server closed" if to_send or pending else "EOF after everything"
                return
            state["received"] += len(data)
            if len(state["first"]) < 200:
                state["first"] += data[:200 - len(state["first"])]

    half_closed = False
    while state["ended"] is None:
        if time.monotonic() - started > max_seconds:
            state["ended"] = "time limit"
            break
        if not pending and to_send > 0:
            piece = chunk[:min(len(chunk), to_send)]
            to_send -= len(piece)
            pending = memoryview(piece)
        if not pending and to_send == 0 and not half_closed:
            half_closed = True
            selector.modify(conn, selectors.EVENT_READ)
            if echo and not isinstance(conn, ssl.SSLSocket):
                conn.shutdown(socket.SHUT_WR)
        if half_closed and echo and isinstance(conn, ssl.SSLSocket) and state["received"] >= state["sent"]:
            state["ended"] = "everything echoed"  # TLS has no half-close: stop at the last byte
            break
        for _key, mask in selector.select(0.5):
            if mask & selectors.EVENT_READ:
                read_all()
            if mask & selectors.EVENT_WRITE and pending and state["ended"] is None:
                try:
                    count = conn.send(pending)
                except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
                    count = 0
                except (OSError, ssl.SSLError) as exc:
                    state["ended"] = f"write: {exc.__class__.__name__}"
                    break
                pending = pending[count:]
                state["sent"] += count
                if not state["ready"] and state["sent"] >= len(prefix) + (1 << 20):
                    say(event="ready", sent=state["sent"])
                    state["ready"] = True
        if isinstance(conn, ssl.SSLSocket) and conn.pending():
            read_all()  # decrypted bytes the selector cannot see
    if not state["ready"]:
        say(event="ready", sent=state["sent"])
    return {"sent": state["sent"], "received": state["received"], "ended": state["ended"],
            "first": state["first"].decode("latin-1")[:120],
            "seconds": round(time.monotonic() - started, 3)}


def line(host: str, port: int, kind: str, megabytes: int, max_seconds: float) -> None:
    sock = socket.create_connection((host, port), timeout=5)
    conn = tls_client(sock, host) if kind.startswith(("tls", "https")) else sock
    prefix = b""
    if kind.endswith("-line"):
        prefix = b"GET /"
    elif kind.endswith("-header"):
        prefix = b"GET / HTTP/1.1\r\nHost: " + host.encode() + b"\r\nX-Huge: "
    result = pump(conn, megabytes << 20, b"A" * 65536, max_seconds, prefix, echo=not prefix)
    conn.close()
    say(event="done", **result)


def length(host: str, port: int, kind: str, value: str, megabytes: int, max_seconds: float) -> None:
    sock = socket.create_connection((host, port), timeout=5)
    conn = tls_client(sock, host) if kind == "https" else sock
    head = (f"POST /echo HTTP/1.1\r\nHost: {host}\r\nContent-Length: {value}\r\n\r\n").encode()
    result = pump(conn, megabytes << 20, b"B" * 65536, max_seconds, head)
    conn.close()
    say(event="done", **result)


def udp_flood(host: str, port: int, count: int, size: int) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.connect((host, port))
    sock.setblocking(False)
    payload = b"F" * size
    sent = echoed = refused = 0
    started = time.monotonic()
    say(event="ready")
    while sent < count and time.monotonic() - started < 30:
        try:
            sock.send(payload)
            sent += 1
        except BlockingIOError:
            pass
        except ConnectionRefusedError:
            refused += 1
        try:
            while True:
                sock.recv(65535)
                echoed += 1
        except (BlockingIOError, ConnectionRefusedError):
            pass
    sock.settimeout(1.0)
    try:
        while True:
            sock.recv(65535)
            echoed += 1
    except OSError:
        pass
    say(event="done", sent=sent, echoed=echoed, seconds=round(time.monotonic() - started, 3))


def udp_from(host: str, port: int, source_port: int, payload: str, wait: float) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("0.0.0.0", source_port))
    sock.settimeout(wait)
    sock.sendto(payload.encode(), (host, port))
    try:
        data, _ = sock.recvfrom(65535)
        say(event="done", echoed=data.decode("latin-1"))
    except OSError:
        say(event="done", echoed=None)


def dns_message(ident: int, response: bool) -> bytes:
    """A question for srv.abuse.lab's address; with `response`, the QR bit set."""
    flags = 0x8400 if response else 0x0100
    name = b"".join(bytes([len(label)]) + label for label in (b"srv", b"abuse", b"lab")) + b"\0"
    return struct.pack("!HHHHHH", ident, flags, 1, 0, 0, 0) + name + struct.pack("!HH", 1, 1)


def dns_response(host: str, port: int, wait: float) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("0.0.0.0", 0))
    sock.settimeout(wait)

    def ask(message: bytes) -> str | None:
        sock.sendto(message, (host, port))
        try:
            return sock.recv(65535).hex()
        except OSError:
            return None
    to_response = ask(dns_message(0x5151, response=True))
    to_query = ask(dns_message(0x5152, response=False))
    say(event="done", port=sock.getsockname()[1], to_response=to_response, to_query=to_query)


def _checksum(data: bytes) -> int:
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def spoof(host: str, port: int, source: str, source_port: int, kind: str) -> None:
    payload = dns_message(0x5153, response=kind == "response")
    udp = struct.pack("!HHHH", source_port, port, 8 + len(payload), 0) + payload   # no UDP checksum
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0x5153, 0x4000, 64, socket.IPPROTO_UDP, 0,
                     socket.inet_aton(source), socket.inet_aton(host))
    ip = ip[:10] + struct.pack("!H", _checksum(ip)) + ip[12:]
    with socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW) as sock:
        sock.sendto(ip + udp, (host, 0))
    say(event="done", sent=len(ip) + len(udp))


def paced(host: str, port: int, count: int, gap: float) -> None:
    sock = socket.create_connection((host, port), timeout=5)
    echoed = b""
    for index in range(count):
        if index:
            time.sleep(gap)  # the pace under test: a slow but live client
        sock.sendall(b"%d" % (index % 10))
        echoed += sock.recv(16)
    sock.shutdown(socket.SHUT_WR)
    tail = sock.recv(16)
    say(event="done", echoed=echoed.decode(), closed_cleanly=tail == b"")


def concurrent(host: str, port: int, count: int) -> None:
    more_files()
    started = time.monotonic()
    socks = [socket.create_connection((host, port), timeout=10) for _ in range(count)]
    selector = selectors.DefaultSelector()
    got: dict[socket.socket, bytes] = {}
    for index, sock in enumerate(socks):
        sock.sendall(b"client %d\n" % index)
        sock.shutdown(socket.SHUT_WR)
        sock.setblocking(False)
        selector.register(sock, selectors.EVENT_READ, index)
        got[sock] = b""
    complete = 0
    deadline = time.monotonic() + 30
    while selector.get_map() and time.monotonic() < deadline:
        for key, _mask in selector.select(1.0):
            data = key.fileobj.recv(4096)
            if data:
                got[key.fileobj] += data
                continue
            complete += got[key.fileobj] == b"client %d\n" % key.data
            selector.unregister(key.fileobj)
    for sock in socks:
        sock.close()
    say(event="done", opened=len(socks), complete=complete, seconds=round(time.monotonic() - started, 3))


def main(argv: list[str]) -> None:
    mode, host, port = argv[1], argv[2], int(argv[3])
    rest = argv[4:]
    if mode == "hold":
        hold(host, port, rest[0], int(rest[1]), int(rest[2]), float(rest[3]))
    elif mode == "line":
        line(host, port, rest[0], int(rest[1]), float(rest[2]))
    elif mode == "length":
        length(host, port, rest[0], rest[1], int(rest[2]), float(rest[3]))
    elif mode == "udp-flood":
        udp_flood(host, port, int(rest[0]), int(rest[1]))
    elif mode == "udp-from":
        udp_from(host, port, int(rest[0]), rest[1], float(rest[2]))
    elif mode == "dns-response":
        dns_response(host, port, float(rest[0]))
    elif mode == "spoof":
        spoof(host, port, rest[0], int(rest[1]), rest[2])
    elif mode == "paced":
        paced(host, port, int(rest[0]), float(rest[1]))
    elif mode == "concurrent":
        concurrent(host, port, int(rest[0]))
    else:
        sys.exit(f"unknown mode {mode}")


if __name__ == "__main__":
    main(sys.argv)
