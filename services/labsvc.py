#!/usr/bin/env python3
"""Built-in lab servers: tcp-echo, udp-echo, tls-echo, http and https, all in one process.

Usage: labsvc.py '<json list of {"kind": ..., "port": ...}>'
Standard library only: this runs inside lab containers.

Every exchange served is appended as one JSON line to the transcript
(/var/log/labctl/transcript.jsonl), so checks can assert what the server saw.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import socket
import socketserver
import ssl
import sys
import threading
import time

# The probe beside this file formats certificate names; the server reports them alike.
from probe import distinguished_name

TRANSCRIPT = os.environ.get("LABCTL_TRANSCRIPT", "/var/log/labctl/transcript.jsonl")
PKI = os.environ.get("LABCTL_PKI", "/opt/labctl/pki")
HEALTH_TOKEN = b"labctl-health"
_transcript_lock = threading.Lock()


def record(service: str, protocol: str, port: int, peer: tuple, received: bytes, sent: bytes,
           **extra) -> None:
    """One JSON line per exchange. Health probes (empty or token payloads from loopback)
    are not exchanges."""
    if peer[0] == "127.0.0.1" and received in (b"", HEALTH_TOKEN):
        return
    entry = {
        "time": round(time.time(), 6),  # first key: labctl filters lines on it with awk
        "service": service,
        "protocol": protocol,
        "port": port,
        "peer": peer[0],
        "peer_port": peer[1],
        "bytes_in": len(received),
        "bytes_out": len(sent),
        "sha256": hashlib.sha256(received).hexdigest(),
        "preview": received[:64].decode("utf-8", "replace"),
        **extra,
    }
    line = json.dumps(entry) + "\n"
    with _transcript_lock:
        with open(TRANSCRIPT, "a", encoding="utf-8") as handle:
            handle.write(line)


class _Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True
    request_queue_size = 256  # checks arrive in concurrent batches; 5 would drop some


def _echo_stream(conn, keep: int = 1 << 20) -> tuple[bytes, dict]:
    """Echo what arrives until the peer closes. Returns the first `keep` bytes, for the
    transcript's preview and `received` checks, and the size and digest of everything."""
    kept = bytearray()
    total = 0
    digest = hashlib.sha256()
    while True:
        try:
            chunk = conn.recv(65536)
        except (ConnectionError, ssl.SSLError, OSError):
            break
        if not chunk:
            break
        total += len(chunk)
        digest.update(chunk)
        if len(kept) < keep:
            kept += chunk[:keep - len(kept)]
        try:
            conn.sendall(chunk)
        except (ConnectionError, ssl.SSLError, OSError):
            break
    return bytes(kept), {"bytes_in": total, "bytes_out": total, "sha256": digest.hexdigest()}


def serve_tcp_echo(port: int) -> socketserver.BaseServer:
    class Handler(socketserver.BaseRequestHandler):
        def handle(self):
            data, totals = _echo_stream(self.request)
            record("tcp-echo", "tcp", port, self.client_address, data, data, **totals)
    return _Server(("0.0.0.0", port), Handler)


def tls_context(client_cert: str = "none") -> ssl.SSLContext:
    """Server context; client_cert is none, optional or required (mutual TLS against the lab CA)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(os.path.join(PKI, "host.pem"), os.path.join(PKI, "host.key"))
    if client_cert != "none":
        context.load_verify_locations(os.path.join(PKI, "ca.pem"))
        context.verify_mode = ssl.CERT_REQUIRED if client_cert == "required" else ssl.CERT_OPTIONAL

    def remember_name(conn, server_name, _context):
        conn.labctl_sni = server_name
    context.sni_callback = remember_name
    return context


def _peer_subject(conn: ssl.SSLSocket) -> str | None:
    cert = conn.getpeercert()
    if not cert:
        return None
    return distinguished_name(cert.get("subject", ()))


def _drain(sock: socket.socket, seconds: float = 1.0) -> None:
    """Close gently after a failed handshake: closing with the client's data unread would
    reset the connection and could destroy the alert that says why it was refused."""
    try:
        sock.shutdown(socket.SHUT_WR)
        sock.settimeout(seconds)
        while sock.recv(4096):
            pass
    except OSError:
        pass


def serve_tls_echo(port: int, client_cert: str = "none") -> socketserver.BaseServer:
    context = tls_context(client_cert)

    class Handler(socketserver.BaseRequestHandler):
        def handle(self):
            self.request.settimeout(30)
            try:
                conn = context.wrap_socket(self.request, server_side=True)
            except (ssl.SSLError, OSError) as exc:
                reason = getattr(exc, "reason", None) or exc.__class__.__name__
                record("tls-echo", "tls", port, self.client_address, b"", b"",
                       error=f"handshake failed: {reason}")
                _drain(self.request)
                return
            data, totals = _echo_stream(conn)
            record("tls-echo", "tls", port, self.client_address, data, data, **totals,
                   tls_version=conn.version(), server_name=getattr(conn, "labctl_sni", None),
                   client_subject=_peer_subject(conn))
    return _Server(("0.0.0.0", port), Handler)


def serve_udp_echo(port: int) -> threading.Thread:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("0.0.0.0", port))

    def loop():
        while True:
            data, peer = sock.recvfrom(65535)
            sock.sendto(data, peer)
            record("udp-echo", "udp", port, peer, data, data)
    return threading.Thread(target=loop, daemon=True, name=f"udp-echo:{port}")


class HttpHandler(http.server.BaseHTTPRequestHandler):
    """GET /health -> ok; /echo echoes the body; /headers shows the request as JSON;
    /status/N answers N; / says hello; anything else is 404."""

    server_version = "labctl-http/1"
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):  # the transcript replaces the access log
        pass

    def _answer(self, status: int, body: bytes, content_type: str = "text/plain; charset=utf-8"):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        return body

    def _handle(self):
        length = int(self.headers.get("Content-Length") or 0)
        received = self.rfile.read(length) if length else b""
        path = self.path.split("?", 1)[0]
        if path == "/health":
            status, body = 200, b"ok\n"
        elif path == "/echo":
            status, body = 200, received
        elif path == "/headers":
            status = 200
            body = json.dumps({"method": self.command, "path": self.path,
                               "client": self.client_address[0],
                               "headers": dict(self.headers.items())}).encode() + b"\n"
        elif path.startswith("/status/") and path[8:].isdigit() and 100 <= int(path[8:]) <= 599:
            status, body = int(path[8:]), f"status {path[8:]}\n".encode()
        elif path == "/":
            status, body = 200, f"hello from {socket.gethostname()}\n".encode()
        else:
            status, body = 404, b"not found\n"
        self._answer(status, body, "application/json" if path == "/headers" else
                     "text/plain; charset=utf-8")
        if not (self.client_address[0] == "127.0.0.1" and path == "/health"):
            record("http", "http", self.server.server_address[1], self.client_address, received,
                   body, method=self.command, path=self.path, status=status)

    def handle(self):
        try:
            super().handle()
        except ssl.SSLError as exc:  # an HTTPS client that failed the handshake
            record("https", "http", self.server.server_address[1], self.client_address, b"", b"",
                   error=f"handshake failed: {exc.reason or exc.__class__.__name__}")

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _handle


def serve_http(port: int) -> socketserver.BaseServer:
    class Server(http.server.ThreadingHTTPServer):
        allow_reuse_address = True
        daemon_threads = True
        request_queue_size = 256
    return Server(("0.0.0.0", port), HttpHandler)


def serve_https(port: int, client_cert: str = "none") -> socketserver.BaseServer:
    server = serve_http(port)
    # The handshake happens on the handler's first read, in its own thread, so a slow or
    # failing client cannot stall the accept loop.
    server.socket = tls_context(client_cert).wrap_socket(server.socket, server_side=True,
                                                         do_handshake_on_connect=False)
    return server


STARTERS = {"tcp-echo": serve_tcp_echo, "tls-echo": serve_tls_echo,
            "udp-echo": serve_udp_echo, "http": serve_http, "https": serve_https}


def main(argv: list[str]) -> int:
    specs = json.loads(argv[1]) if len(argv) > 1 else []
    os.makedirs(os.path.dirname(TRANSCRIPT), exist_ok=True)
    open(TRANSCRIPT, "a").close()
    workers = []
    for spec in specs:
        options = {"client_cert": spec["client_cert"]} if spec.get("client_cert") else {}
        server = STARTERS[spec["kind"]](int(spec["port"]), **options)
        if isinstance(server, threading.Thread):
            workers.append(server)
        else:
            workers.append(threading.Thread(target=server.serve_forever, daemon=True,
                                            name=f"{spec['kind']}:{spec['port']}"))
    for worker in workers:
        worker.start()
    print(f"labsvc: serving {', '.join(s['kind'] + ':' + str(s['port']) for s in specs) or 'nothing'}",
          flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
