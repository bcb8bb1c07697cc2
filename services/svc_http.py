"""HTTP for the built-in servers (services/labsvc.py): the http and https services'
application, on a TCP (svc_tcp.Conn) or TLS (svc_tls.TlsConn) connection.

Requests are read in the event loop with every size capped and the head timed:
  - the request line and header lines <= MAX_LINE, the head <= MAX_HEAD and MAX_HEADERS
    lines, within REQUEST_TIMEOUT of its first byte (slowloris);
  - a body <= MAX_BODY with a valid Content-Length, bodies in flight <= BODY_BUDGET in
    all; an answer is at most MAX_BODY and counts in BODY_BUDGET until it has left;
  - answers 400/408/413/414/431/501/503 and closes after a short linger.
Only a host that serves HTTP imports this module. Standard library only.
"""

from __future__ import annotations

import json
import socket
import sys
import time
from http import HTTPStatus

from svc_loop import CHUNK, IDLE_TIMEOUT, limit
from svc_tcp import Conn
from svc_transcript import EMPTY_SHA256, PREVIEW, record, record_bytes, sha256

REQUEST_TIMEOUT = limit("LABCTL_SVC_REQUEST_TIMEOUT", 10.0)    # first byte -> whole HTTP head
MAX_LINE = 8192
MAX_HEAD = 32768
MAX_HEADERS = 100
MAX_BODY = int(limit("LABCTL_SVC_MAX_BODY", 8 << 20))
BODY_BUDGET = 2 * MAX_BODY

HTTP_METHODS = {"GET", "POST", "PUT", "DELETE", "PATCH", "HEAD"}
REASONS: dict[int, str] = {status.value: status.phrase for status in HTTPStatus}
SERVER_HEADER = "labctl-http/1 Python/" + sys.version.split()[0]
_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("", "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def http_date() -> str:
    t = time.gmtime()
    return (f"{_DAYS[t.tm_wday]}, {t.tm_mday:02d} {_MONTHS[t.tm_mon]} {t.tm_year} "
            f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} GMT")


class BadRequest(Exception):
    def __init__(self, status: int, detail: str):
        super().__init__(detail)
        self.status, self.detail = status, detail


class HttpApp:
    """http and https: GET /health -> ok; /echo echoes the body; /headers shows the request
    as JSON; /status/N answers N; / says hello; anything else is 404. HTTP/1.1 keep-alive,
    requests read in the event loop with every size capped and the head timed."""

    __slots__ = ("conn", "buf", "scan", "phase", "request", "body", "length", "reserved",
                 "keep_alive", "head_bytes", "head_preview")

    def __init__(self, conn: Conn):
        self.conn = conn
        self.buf = bytearray()
        self.scan = 0          # where the unscanned part of the head starts
        self.phase = "idle"    # idle, head, body, closing
        self.request: tuple | None = None
        self.body = bytearray()
        self.length = 0
        self.reserved = 0
        self.keep_alive = True
        self.head_bytes = 0
        self.head_preview = b""

    def wants_input(self) -> bool:
        return self.phase != "closing"

    def feed(self, data: bytes) -> None:
        if self.phase != "closing":
            self.buf += data
            self.process()

    def process(self) -> None:
        """Answer every complete request in the buffer (pipelining), in order, while the
        answers have room to go out."""
        conn = self.conn
        while conn.state == "open" and len(conn.out) < CHUNK:
            if self.phase == "body":
                need = self.length - len(self.body)
                if need and self.buf:
                    taken = self.buf[:need]
                    self.body += taken
                    del self.buf[:len(taken)]
                if len(self.body) < self.length:
                    return
                self.respond()
                continue
            if self.phase == "idle":
                while self.buf[:2] == b"\r\n" or self.buf[:1] == b"\n":  # stray line ends
                    del self.buf[:2 if self.buf[:1] == b"\r" else 1]
                if not self.buf:
                    return
                self.phase, self.scan, self.head_bytes, self.request = "head", 0, 0, None
                conn.set_deadline(REQUEST_TIMEOUT, False)
            if self.phase != "head":
                return
            try:
                end = self.head_end()
                if end < 0:
                    return
                head = bytes(self.buf[:end])
                del self.buf[:end]
                self.scan = 0
                self.head_bytes, self.head_preview = len(head), head[:PREVIEW]
                self.start(head)
            except BadRequest as bad:
                self.refuse(bad.status, bad.detail)
                return

    def head_end(self) -> int:
        buf = self.buf
        pos = self.scan
        while True:
            newline = buf.find(b"\n", pos)
            if newline < 0:
                if len(buf) - pos > MAX_LINE:
                    first = pos == 0
                    raise BadRequest(414 if first else 431,
                                     f"{'request line' if first else 'a header line'} over "
                                     f"{MAX_LINE} bytes")
                if len(buf) > MAX_HEAD:
                    raise BadRequest(431, f"request head over {MAX_HEAD} bytes")
                self.scan = pos
                return -1
            if newline - pos > MAX_LINE + 1:
                first = pos == 0
                raise BadRequest(414 if first else 431,
                                 f"{'request line' if first else 'a header line'} over {MAX_LINE} bytes")
            if newline + 1 > MAX_HEAD:
                raise BadRequest(431, f"request head over {MAX_HEAD} bytes")
            if pos > 0 and (newline == pos or (newline == pos + 1 and buf[pos] == 13)):
                return newline + 1
            pos = newline + 1

    def start(self, head: bytes) -> None:
        lines = head.decode("iso-8859-1").split("\n")
        words = lines[0].rstrip("\r").split()
        if len(words) != 3 or not words[2].startswith("HTTP/"):
            raise BadRequest(400, f"bad request line {lines[0][:80].rstrip()!r}")
        method, target, version_text = words
        try:
            major, minor = (int(part) for part in version_text[5:].split(".", 1))
        except ValueError:
            raise BadRequest(400, f"bad HTTP version {version_text[:20]!r}") from None
        if major != 1:
            raise BadRequest(505, f"HTTP version {version_text[:20]} is not supported")
        headers: list[list[str]] = []
        for line in lines[1:]:
            line = line.rstrip("\r")
            if not line:
                continue
            if line[0] in " \t" and headers:  # an old-style continuation line
                headers[-1][1] += " " + line.strip()
                continue
            name, colon, value = line.partition(":")
            if not colon or not name or name != name.strip():
                raise BadRequest(400, f"bad header line {line[:80]!r}")
            headers.append([name, value.strip()])
            if len(headers) > MAX_HEADERS:
                raise BadRequest(431, f"more than {MAX_HEADERS} header lines")
        fields = {name.lower(): value for name, value in headers}
        connection = {token.strip().lower() for token in fields.get("connection", "").split(",")}
        self.keep_alive = ("close" not in connection) if minor >= 1 else ("keep-alive" in connection)
        self.request = (method, target, headers)
        if method not in HTTP_METHODS:
            raise BadRequest(501, f"unsupported method {method[:20]!r}")
        if "transfer-encoding" in fields:
            raise BadRequest(501, "Transfer-Encoding is not supported; send a Content-Length")
        lengths = {value.strip() for name, value in headers if name.lower() == "content-length"}
        if len(lengths) > 1:
            raise BadRequest(400, "conflicting Content-Length headers")
        text = lengths.pop() if lengths else "0"
        if not (text.isascii() and text.isdigit()):
            raise BadRequest(400, f"bad Content-Length {text[:30]!r}")
        length = int(text)
        if length > MAX_BODY:
            raise BadRequest(413, f"Content-Length {text[:30]} is over the limit of {MAX_BODY} bytes")
        loop = self.conn.loop
        if length and loop.body_reserved + length > BODY_BUDGET:
            raise BadRequest(503, "too many request bodies in flight; try again")
        self.length = length
        self.reserved = length
        loop.body_reserved += length
        self.body = bytearray()
        self.phase = "body"
        self.conn.set_deadline(IDLE_TIMEOUT, True)
        if "100-continue" in fields.get("expect", "").lower() and minor >= 1:
            self.conn.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def respond(self) -> None:
        method, target, headers = self.request
        received = bytes(self.body)
        self.body = bytearray()
        conn = self.conn
        path = target.split("?", 1)[0]
        content_type = "text/plain; charset=utf-8"
        if path == "/health":
            status, body = 200, b"ok\n"
        elif path == "/echo":
            status, body = 200, received
        elif path == "/headers":
            status, content_type = 200, "application/json"
            body = json.dumps({"method": method, "path": target, "client": conn.peer[0],
                               "headers": dict(headers)}).encode() + b"\n"
        elif path.startswith("/status/") and path[8:].isdigit() and 100 <= int(path[8:]) <= 599:
            status, body = int(path[8:]), f"status {path[8:]}\n".encode()
        elif path == "/":
            status, body = 200, f"hello from {socket.gethostname()}\n".encode()
        else:
            status, body = 404, b"not found\n"
        if not (conn.peer[0] == "127.0.0.1" and path == "/health"):
            record_bytes("http", "http", conn.service.port, conn.peer, received, len(body),
                         method=method, path=target, status=status)
        self.answer(status, body, content_type, head_only=method == "HEAD")
        self.request = None
        if self.keep_alive:
            self.phase = "idle"
            conn.set_deadline(IDLE_TIMEOUT, True)
        else:
            self.phase = "closing"
            conn.finish()

    def answer(self, status: int, body: bytes, content_type: str, head_only: bool = False,
               close: bool = False) -> None:
        head = (f"HTTP/1.1 {status} {REASONS.get(status, '')}\r\n"
                f"Server: {SERVER_HEADER}\r\nDate: {http_date()}\r\n"
                f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
                + ("Connection: close\r\n" if close else "") + "\r\n").encode("latin-1")
        self.conn.write(head if head_only else head + body)

    def refuse(self, status: int, detail: str) -> None:
        """A request this server will not serve: say why, record it, close after a linger."""
        conn = self.conn
        if self.head_bytes:  # the head was read
            preview, size = self.head_preview, self.head_bytes + len(self.body)
        else:
            preview, size = bytes(self.buf[:PREVIEW]), len(self.buf)
        method, target = (self.request[0], self.request[1]) if self.request else (None, None)
        body = f"{detail}\n".encode()
        record("http", "http", conn.service.port, conn.peer, preview, size, len(body),
               sha256(preview).hexdigest(), method=method, path=target, status=status,
               error=detail)
        self.buf = bytearray()
        self.phase = "closing"
        self.answer(status, body, "text/plain; charset=utf-8", close=True)
        conn.finish()

    def flushed(self) -> None:
        if self.phase == "idle":
            self.release()  # the answer has left: its body is no longer held
            if self.buf:
                self.process()  # requests that came while the answers were queued

    def eof(self) -> None:
        if self.phase == "head" or self.phase == "body":
            self.record_incomplete("the client closed mid-request")
        self.phase = "closing"
        self.conn.finish()

    def aborted(self, reason: str) -> None:
        if self.phase in ("head", "body") or not reason.startswith("reset"):
            self.record_incomplete(reason)
        self.phase = "closing"

    def record_incomplete(self, reason: str) -> None:
        conn = self.conn
        data = bytes(self.body if self.phase == "body" else self.buf[:PREVIEW])
        method, target = (self.request[0], self.request[1]) if self.request else (None, None)
        record("http", "http", conn.service.port, conn.peer, data[:PREVIEW],
               len(self.body) if self.phase == "body" else len(self.buf), 0,
               sha256(data).hexdigest(), method=method, path=target, error=reason)

    def timed_out(self) -> None:
        if self.phase == "head":
            self.refuse(408, f"request head not complete within {REQUEST_TIMEOUT:g}s")
        elif self.phase == "body":
            self.refuse(408, f"request body stalled for {IDLE_TIMEOUT:g}s")
        else:  # idle keep-alive, or an answer the client does not read
            self.conn.close()

    def handshake_failed(self, reason: str) -> None:
        conn = self.conn
        record("https", "http", conn.service.port, conn.peer, b"", 0, 0, EMPTY_SHA256, error=reason)

    def release(self) -> None:
        if self.reserved:
            self.conn.loop.body_reserved -= self.reserved
            self.reserved = 0

