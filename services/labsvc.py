#!/usr/bin/env python3
"""Built-in lab servers: tcp-echo, udp-echo, tls-echo, http and https, all in one process.

Usage: labsvc.py '<json list of {"kind": ..., "port": ..., "client_cert": ...}>'
Standard library only: this runs inside lab containers.

Every exchange served is appended as one JSON line to the transcript
(/var/log/labctl/transcript.jsonl), so checks can assert what the server saw; the same line
goes to standard output after "transcript ", where labctl reads it through the engine's log
API. "labsvc: serving ..." on standard output says every server listens: the host is ready.
Every server listens on IPv4 and on IPv6 (a socket for each; IPv6 where the host has it),
and writes its peers as services/inet.py does: 10.1.2.3, fd00:1::2.

One thread serves everything: a selectors event loop (epoll) owns every listening socket,
every connection and every UDP socket. A connection is a socket, a few small buffers and,
for TLS, an OpenSSL object driven through memory BIOs; an idle connection costs no thread.
Every handler answers at once (an echo, a health page, a status), so no worker pool is
needed. Abuse costs only the connection that does it:

  - idle / stalled connections close after IDLE_TIMEOUT without progress in either
    direction; a TLS handshake must finish within HANDSHAKE_TIMEOUT of the accept, an HTTP
    request head within REQUEST_TIMEOUT of its first byte (slowloris);
  - at most MAX_CONNECTIONS connections; one more evicts the least recently active;
  - at most MAX_HANDSHAKES TLS handshakes in progress (each holds ~45 KB in OpenSSL); a
    newcomer waits for a slot, or takes the slot of one stuck longer than HANDSHAKE_GRACE;
  - an echo holds at most about one read (CHUNK) of output it could not send yet, and
    stops reading until it is sent (a flood or a client that never reads stalls itself);
    an HTTP answer is at most MAX_BODY and counts in BODY_BUDGET until it has left;
  - HTTP: request line and header lines <= MAX_LINE, the head <= MAX_HEAD and MAX_HEADERS
    lines, a body <= MAX_BODY with a valid Content-Length, bodies in flight <= BODY_BUDGET
    in all; answers 400/408/413/414/431/501/503 and closes after a short linger;
  - the transcript stops at TRANSCRIPT_CAP bytes with one last line saying it was cut;
  - udp-echo counts a failed send in the transcript and carries on.

Environment (numbers): LABCTL_TRANSCRIPT, LABCTL_PKI, and LABCTL_SVC_IDLE_TIMEOUT,
LABCTL_SVC_HANDSHAKE_TIMEOUT, LABCTL_SVC_REQUEST_TIMEOUT, LABCTL_SVC_MAX_CONNECTIONS,
LABCTL_SVC_MAX_BODY, LABCTL_SVC_TRANSCRIPT_CAP override the limits.
"""

from __future__ import annotations

import collections
import errno
import json
import os
import selectors
import socket
import sys
import time

from inet import endpoint, family_of, ipv6_interfaces, ipv6_membership  # beside this file

try:  # the built-in digest: hashlib would load OpenSSL's libcrypto into every server
    from _sha256 import sha256
except ImportError:
    try:
        from _sha2 import sha256
    except ImportError:
        from hashlib import sha256

# ssl (and probe.distinguished_name), and http's status phrases, are imported only when a
# TLS or HTTP service is configured: a host serving a plain tcp-echo stays small.
ssl = None


def _limit(name: str, default: float) -> float:
    try:
        return float(os.environ.get(name, default))
    except ValueError:
        return default


TRANSCRIPT = os.environ.get("LABCTL_TRANSCRIPT", "/var/log/labctl/transcript.jsonl")
PKI = os.environ.get("LABCTL_PKI", "/opt/labctl/pki")
HEALTH_TOKEN = b"labctl-health"

IDLE_TIMEOUT = _limit("LABCTL_SVC_IDLE_TIMEOUT", 30.0)          # no progress either way
HANDSHAKE_TIMEOUT = _limit("LABCTL_SVC_HANDSHAKE_TIMEOUT", 10.0)  # accept -> TLS established
REQUEST_TIMEOUT = _limit("LABCTL_SVC_REQUEST_TIMEOUT", 10.0)    # first byte -> whole HTTP head
LINGER = 2.0              # after a refusal: half-close, discard what still comes, then close
MAX_CONNECTIONS = int(_limit("LABCTL_SVC_MAX_CONNECTIONS", 4096))
MAX_HANDSHAKES = 128
HANDSHAKE_GRACE = 1.0     # when all are taken, one older than this yields to a newcomer
CHUNK = 65536             # one read; also the most output a connection holds unsent
MAX_LINE = 8192
MAX_HEAD = 32768
MAX_HEADERS = 100
MAX_BODY = int(_limit("LABCTL_SVC_MAX_BODY", 8 << 20))
BODY_BUDGET = 2 * MAX_BODY
TRANSCRIPT_CAP = int(_limit("LABCTL_SVC_TRANSCRIPT_CAP", 16 << 20))
PREVIEW = 64
UDP_BATCH = 256           # datagrams per wake-up, so a flood cannot starve the others
UDP_BUFFER = 4 << 20      # asked for; the kernel gives at most net.core.rmem_max
ACCEPT_BATCH = 64
SWEEP = 0.25              # how often deadlines are looked at


# -- the transcript ------------------------------------------------------------------------

MARK = b"transcript "  # labctl.names.TRANSCRIPT_MARK: how labctl knows these lines in the output


class Transcript:
    """Append-only JSON lines, capped: the line that would pass the cap is replaced by one
    saying the transcript was cut, and nothing more is appended (until the file is emptied
    by someone else). The file is opened per line, so a removed file is simply recreated."""

    RESERVE = 512  # room kept for the cut line

    def __init__(self, path: str, cap: int):
        self.path, self.cap = path, cap
        self.cut = self._ends_cut()  # a restarted server does not cut twice
        self.dropped = 0

    def _ends_cut(self) -> bool:
        try:
            with open(self.path, "rb") as handle:
                handle.seek(max(0, os.fstat(handle.fileno()).st_size - self.RESERVE))
                return b'"cut": true' in handle.read().rstrip(b"\n").rsplit(b"\n", 1)[-1]
        except OSError:
            return False

    def append(self, entry: dict) -> None:
        line = (json.dumps(entry) + "\n").encode()
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
        except OSError:
            self.dropped += 1
            return
        try:
            size = os.fstat(fd).st_size
            if size + len(line) + self.RESERVE <= self.cap:
                os.write(fd, line)
                self.cut = False
            elif not self.cut and size <= self.cap:
                self.cut = True
                self.dropped += 1
                line = self._cut_line()
                os.write(fd, line)
            else:
                self.dropped += 1
                return
        except OSError:  # a full disk costs the line, never the server
            self.dropped += 1
            return
        finally:
            os.close(fd)
        self._announce(line)

    @staticmethod
    def _announce(line: bytes) -> None:
        """The same line on standard output, marked: the engine keeps it with the host's
        output, where labctl reads a check's window without starting a process here."""
        data = MARK + line
        try:
            while data:
                data = data[os.write(1, data):]
        except OSError:
            pass

    def _cut_line(self) -> bytes:
        entry = {"time": round(time.time(), 6), "service": "labsvc", "protocol": "", "port": None,
                 "peer": None, "peer_port": None, "bytes_in": 0, "bytes_out": 0, "sha256": "",
                 "preview": "", "cut": True,
                 "error": f"transcript cut: it reached its cap of {self.cap} bytes; "
                          "later exchanges are not recorded"}
        return (json.dumps(entry) + "\n").encode()


transcript = Transcript(TRANSCRIPT, TRANSCRIPT_CAP)


def record(service: str, protocol: str, port: int, peer: tuple, preview: bytes, bytes_in: int,
           bytes_out: int, sha256: str, **extra) -> None:
    """One JSON line per exchange. Health probes (empty or token payloads from loopback)
    are not exchanges."""
    peer = endpoint(peer)
    if peer[0] == "127.0.0.1" and (bytes_in == 0 or (bytes_in == len(HEALTH_TOKEN)
                                                     and preview == HEALTH_TOKEN)):
        return
    entry = {
        "time": round(time.time(), 6),  # labctl keeps a check's window by it
        "service": service,
        "protocol": protocol,
        "port": port,
        "peer": peer[0],
        "peer_port": peer[1],
        "bytes_in": bytes_in,
        "bytes_out": bytes_out,
        "sha256": sha256,
        "preview": preview[:PREVIEW].decode("utf-8", "replace"),
        **{key: value for key, value in extra.items() if value is not None or key in KEEP_NONE},
    }
    transcript.append(entry)


KEEP_NONE = {"tls_version", "server_name", "client_subject"}  # tls-echo always shows them


def record_bytes(service: str, protocol: str, port: int, peer: tuple, received: bytes,
                 sent_length: int, **extra) -> None:
    record(service, protocol, port, peer, received[:PREVIEW], len(received), sent_length,
           sha256(received).hexdigest(), **extra)


def _reason(exc: BaseException) -> str:
    return getattr(exc, "reason", None) or getattr(exc, "strerror", None) or exc.__class__.__name__


# -- the event loop ------------------------------------------------------------------------

class Loop:
    def __init__(self):
        self.selector = selectors.DefaultSelector()
        self.conns: dict[int, Conn] = {}
        self.now = time.monotonic()
        self.body_reserved = 0          # bytes of HTTP bodies in flight
        self.handshakes: dict[int, tuple] = {}  # fd -> (connection, since) holding a slot
        self.waiting: collections.deque = collections.deque()  # waiting for a slot
        self.paused: list = []          # listeners paused after EMFILE, with their resume time
        self.errors = 0

    def run(self) -> None:
        """Serve until SIGTERM or SIGINT. The signal only sets a flag (and wakes the
        selector), so the exchange being served when it comes is finished and recorded."""
        import signal
        wake_read, wake_write = socket.socketpair()
        wake_read.setblocking(False)
        wake_write.setblocking(False)
        stop = []

        def stopping(_number, _frame):
            stop.append(True)
        signal.set_wakeup_fd(wake_write.fileno(), warn_on_full_buffer=False)
        signal.signal(signal.SIGTERM, stopping)
        signal.signal(signal.SIGINT, stopping)
        def woken(_mask: int) -> None:
            try:
                wake_read.recv(64)
            except OSError:
                pass
        self.selector.register(wake_read, selectors.EVENT_READ, woken)
        next_sweep = time.monotonic() + SWEEP
        while not stop:
            events = self.selector.select(max(0.0, next_sweep - time.monotonic()))
            self.now = time.monotonic()
            for key, mask in events:
                try:
                    key.data(mask)
                except Exception as exc:  # a bug in one exchange must not stop the others
                    self.failed(key, exc)
            if self.waiting and len(self.handshakes) < MAX_HANDSHAKES:
                self.grant_slots()
            if self.now >= next_sweep:
                self.sweep()
                next_sweep = self.now + SWEEP

    def failed(self, key, exc: Exception) -> None:
        self.errors += 1
        if self.errors <= 50:
            print(f"labsvc: internal error: {exc.__class__.__name__}: {exc}", file=sys.stderr,
                  flush=True)
        owner = getattr(key.data, "__self__", None)
        if isinstance(owner, Conn):
            owner.close()

    def sweep(self) -> None:
        now = self.now
        for conn in [c for c in self.conns.values() if now >= c.deadline]:
            if not conn.closed:
                try:
                    conn.timed_out()
                    conn.settle()  # an answer (408) or a TLS alert to send
                except Exception as exc:
                    self.errors += 1
                    print(f"labsvc: internal error: {exc!r}", file=sys.stderr, flush=True)
                    conn.close()
        for item in [p for p in self.paused if now >= p[1]]:
            self.paused.remove(item)
            self.selector.register(item[0].sock, selectors.EVENT_READ, item[0].accept)
        self.grant_slots()

    # TLS handshake slots
    def take_slot(self, conn: Conn) -> bool:
        if len(self.handshakes) >= MAX_HANDSHAKES:
            oldest, since = min(self.handshakes.values(), key=lambda held: held[1])
            if self.now - since < HANDSHAKE_GRACE:
                return False
            oldest.evict(f"handshake evicted: {MAX_HANDSHAKES} handshakes in progress and it "
                         f"took over {HANDSHAKE_GRACE:g}s")
        self.handshakes[conn.fd] = (conn, self.now)
        return True

    def free_slot(self, conn: Conn) -> None:
        held = self.handshakes.get(conn.fd)
        if held is not None and held[0] is conn:
            del self.handshakes[conn.fd]

    def grant_slots(self) -> None:
        while self.waiting:
            conn = self.waiting[0]
            if conn.closed or not conn.waiting_slot:
                self.waiting.popleft()
                continue
            if not self.take_slot(conn):
                return
            self.waiting.popleft()
            conn.resume_tls()

    def make_room(self) -> bool:
        """Close the least recently active connection (the connection cap, or no fds left)."""
        if not self.conns:
            return False
        victim = min(self.conns.values(), key=lambda c: c.active)
        victim.evict(f"evicted: {len(self.conns)} connections open, it was the least recently active")
        return True


# -- both families -------------------------------------------------------------------------

FAMILIES = (socket.AF_INET, socket.AF_INET6)
# What making or binding a socket fails with where the host lacks the family (IPv6 disabled
# or missing in the kernel). Docker leaves a container on IPv4-only networks able to bind
# "::" all the same; such a socket hears nothing until an IPv6 network is connected.
LACKS_FAMILY = (errno.EAFNOSUPPORT, errno.EADDRNOTAVAIL, errno.EPROTONOSUPPORT)


def bound(family: int, kind: int, port: int) -> socket.socket:
    """A socket bound to `port` on every address of its family. An IPv6 socket takes IPv6
    only: IPv4 has a socket of its own, so an IPv4 peer never shows as ::ffff:a.b.c.d."""
    sock = socket.socket(family, kind)
    try:
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("::" if family == socket.AF_INET6 else "0.0.0.0", port))
    except OSError:
        sock.close()
        raise
    return sock


def each_family(make) -> list:
    """make(family) for IPv4 and IPv6, without the family the host lacks (at least one)."""
    made, lacking = [], None
    for family in FAMILIES:
        try:
            made.append(make(family))
        except OSError as exc:
            if exc.errno not in LACKS_FAMILY:
                raise
            lacking = exc
    if not made:
        raise lacking
    return made


# -- TCP services --------------------------------------------------------------------------

class Listener:
    def __init__(self, loop: Loop, service: Service, family: int):
        self.loop, self.service = loop, service
        self.sock = bound(family, socket.SOCK_STREAM, service.port)
        self.sock.listen(4096)  # the kernel caps it at somaxconn
        self.sock.setblocking(False)
        loop.selector.register(self.sock, selectors.EVENT_READ, self.accept)

    def accept(self, _mask: int) -> None:
        loop = self.loop
        for _ in range(ACCEPT_BATCH):
            try:
                sock, peer = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    if not loop.make_room():  # nothing to close: stop accepting a moment
                        loop.selector.unregister(self.sock)
                        loop.paused.append((self, loop.now + 0.5))
                        return
                continue  # ECONNABORTED and the like: that connection only
            if len(loop.conns) >= MAX_CONNECTIONS:
                loop.make_room()
            sock.setblocking(False)
            Conn(loop, sock, endpoint(peer), self.service)


def first_record_complete(data: bytes) -> bool:
    """Whether `data` holds the first TLS record whole (or is plainly not a handshake)."""
    if len(data) < 5:
        return False
    if data[0] != 0x16 or len(data) > 5 + 16384 + 2048:
        return True  # not a handshake record, or an oversized one: OpenSSL says why
    return len(data) >= 5 + int.from_bytes(data[3:5], "big")


class Conn:
    """One TCP connection: the socket, unsent output, optional TLS, and its application
    (EchoApp or HttpApp). States: open, closing (send what is left, then half-close),
    draining (half-closed: discard input until EOF or the linger ends), closed."""

    __slots__ = ("loop", "sock", "fd", "peer", "service", "app", "out", "tls", "bio_in",
                 "bio_out", "established", "state", "mask", "deadline", "idle_based", "active",
                 "accepted", "read_eof", "waiting_slot", "held", "linger", "facts")

    def __init__(self, loop: Loop, sock: socket.socket, peer: tuple, service: Service):
        self.loop, self.sock, self.fd, self.peer, self.service = loop, sock, sock.fileno(), peer, service
        self.out = bytearray()
        self.tls = self.bio_in = self.bio_out = None
        self.established = service.context is None
        self.state = "open"
        self.read_eof = False
        self.waiting_slot = False
        self.held = None   # a TLS client's first bytes, until its first record is whole
        self.linger = LINGER
        self.facts: dict = {}  # TLS facts for the transcript, taken when the handshake ends
        self.accepted = self.active = loop.now
        self.mask = 0
        self.app = service.app(self)
        if self.established:
            self.deadline, self.idle_based = loop.now + IDLE_TIMEOUT, True
        else:
            self.deadline, self.idle_based = loop.now + HANDSHAKE_TIMEOUT, False
        loop.conns[self.fd] = self
        self.update()

    @property
    def closed(self) -> bool:
        return self.state == "closed"

    # deadlines
    def progress(self) -> None:
        self.active = self.loop.now
        if self.idle_based:
            self.deadline = self.loop.now + IDLE_TIMEOUT

    def set_deadline(self, seconds: float, idle_based: bool) -> None:
        self.deadline, self.idle_based = self.loop.now + seconds, idle_based

    # selector interest
    def wants_read(self) -> bool:
        if self.state == "draining":
            return True
        if self.state != "open" or self.read_eof or self.waiting_slot:
            return False
        return len(self.out) < CHUNK and self.app.wants_input()

    def update(self) -> None:
        if self.closed:
            return
        mask = (selectors.EVENT_READ if self.wants_read() else 0) | \
               (selectors.EVENT_WRITE if self.out else 0)
        if mask == self.mask:
            return
        selector = self.loop.selector
        if not mask:
            selector.unregister(self.sock)
        elif not self.mask:
            selector.register(self.sock, mask, self.on_event)
        else:
            selector.modify(self.sock, mask, self.on_event)
        self.mask = mask

    # events
    def on_event(self, mask: int) -> None:
        if mask & selectors.EVENT_WRITE:
            self.flush()
        if mask & selectors.EVENT_READ and not self.closed:
            self.read()
        if not self.closed and self.tls is not None and self.established and self.state == "open":
            self.pump()  # input OpenSSL still holds, now that output has room
        self.settle()

    def settle(self) -> None:
        """Send what can be sent, move on from what was sent, and watch for what is next."""
        if not self.closed:
            self.flush()
            self.after_flush()
            self.update()

    def read(self) -> None:
        if self.state == "closing":
            return
        try:
            data = self.sock.recv(CHUNK)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:  # reset by the peer
            data = None
        if self.state == "draining":
            if not data:
                self.close()
            return
        if data is None:
            self.app.aborted("reset by the client")
            self.close()
            return
        self.progress()
        if not data:
            self.read_eof = True
        if self.service.context is None:
            if data:
                self.app.feed(data)
            else:
                self.app.eof()
            return
        if self.tls is None:
            # OpenSSL holds ~45 KB per handshake in progress, so it gets none before the
            # client's first record (its ClientHello) is complete: a client trickling one
            # costs only what it sent. Then it needs one of the MAX_HANDSHAKES slots.
            self.held = (self.held or b"") + data
            if data and not first_record_complete(self.held):
                return
            if not self.loop.take_slot(self):
                self.waiting_slot = True
                self.loop.waiting.appendleft(self)  # newest first: a stale crowd waits longest
                return
            self.begin_tls()
            return
        self.tls_input(data)
        self.pump()

    def tls_input(self, data: bytes) -> None:
        if data:
            self.bio_in.write(data)
        else:
            self.bio_in.write_eof()

    def begin_tls(self) -> None:
        """Start the handshake with what the client sent so far (it holds a slot)."""
        self.bio_in, self.bio_out = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.tls = self.service.context.wrap_bio(self.bio_in, self.bio_out, server_side=True)
        data, self.held = self.held, None
        if data:
            self.tls_input(data)
        if self.read_eof:
            self.tls_input(b"")
        self.pump()

    def resume_tls(self) -> None:
        """A handshake slot came free for this waiting connection."""
        self.waiting_slot = False
        self.begin_tls()
        self.settle()

    def pump(self) -> None:
        """Drive OpenSSL: finish the handshake, then hand decrypted input to the app while
        there is room for its output."""
        if not self.established:
            try:
                self.tls.do_handshake()
            except ssl.SSLWantReadError:
                self.tls_output()
                return
            except (ssl.SSLError, OSError) as exc:
                self.tls_output()  # the alert that says why
                self.loop.free_slot(self)
                self.app.handshake_failed(f"handshake failed: {_reason(exc)}")
                self.finish(linger=1.0)
                return
            self.established = True
            self.facts = self.tls_facts()
            self.loop.free_slot(self)
            self.set_deadline(IDLE_TIMEOUT, True)
            self.tls_output()
        while self.state == "open" and len(self.out) < CHUNK and self.app.wants_input():
            try:
                data = self.tls.read(CHUNK)
            except ssl.SSLWantReadError:
                break
            except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                data = b""
            except ssl.SSLError as exc:
                self.tls_output()
                self.app.aborted(f"tls error: {_reason(exc)}")
                self.close()
                return
            if not data:
                self.read_eof = True
                self.app.eof()
                break
            self.app.feed(data)
        self.tls_output()

    def tls_output(self) -> None:
        if self.bio_out is not None and self.bio_out.pending:
            self.out += self.bio_out.read()

    # output
    def write(self, data: bytes) -> None:
        if self.closed or self.state == "draining":
            return
        if self.tls is not None:
            self.tls.write(data)
            self.tls_output()
        else:
            self.out += data

    def flush(self) -> None:
        while self.out and not self.closed:
            try:
                sent = self.sock.send(self.out)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                self.app.aborted("reset by the client")
                self.close()
                return
            del self.out[:sent]
            self.progress()

    def after_flush(self) -> None:
        if self.out or self.closed:
            return
        if self.state == "closing":
            self.half_close()
        elif self.state == "open":
            self.app.flushed()

    def finish(self, linger: float = LINGER) -> None:
        """Send what is left, then half-close and linger: closing with unread input would
        reset the connection and could destroy the answer (or the TLS alert) just sent."""
        if self.state != "open":
            return
        if self.tls is not None and self.established:
            try:
                self.tls.unwrap()  # close_notify: the client reads a clean end of stream
            except (ssl.SSLError, ValueError):
                pass
            self.tls_output()
        self.state = "closing"
        self.set_deadline(IDLE_TIMEOUT, True)
        self.linger = linger
        if not self.out:
            self.half_close()

    def half_close(self) -> None:
        if self.read_eof:
            self.close()
            return
        try:
            self.sock.shutdown(socket.SHUT_WR)
        except OSError:
            self.close()
            return
        self.state = "draining"
        self.set_deadline(self.linger, False)
        self.update()

    def timed_out(self) -> None:
        if self.state == "open":
            if not self.established:
                self.app.handshake_failed(f"handshake timeout: not established within "
                                          f"{HANDSHAKE_TIMEOUT:g}s")
                self.close()
            else:
                self.app.timed_out()  # it records, and closes or answers
                if self.state == "open" and not self.closed:
                    self.close()
        else:
            self.close()

    def evict(self, reason: str) -> None:
        if self.state == "open":
            if self.established:
                self.app.aborted(reason)
            else:
                self.app.handshake_failed(reason)
        self.close()

    def close(self) -> None:
        if self.closed:
            return
        self.state = "closed"
        loop = self.loop
        loop.free_slot(self)
        if self.mask:
            loop.selector.unregister(self.sock)
            self.mask = 0
        loop.conns.pop(self.fd, None)
        self.app.release()
        try:
            self.sock.close()
        except OSError:
            pass
        self.out = bytearray()
        self.tls = self.bio_in = self.bio_out = self.held = None

    def tls_facts(self) -> dict:
        cert = self.tls.getpeercert()
        subject = distinguished_name(cert.get("subject", ())) if cert else None
        return {"tls_version": self.tls.version(), "server_name": getattr(self.tls, "labctl_sni", None),
                "client_subject": subject}


class EchoApp:
    """tcp-echo and tls-echo: every byte back until the client closes; the transcript entry
    is written when the exchange ends. Keeps the size, a digest and the first bytes."""

    __slots__ = ("conn", "digest", "total", "preview", "done")

    def __init__(self, conn: Conn):
        self.conn = conn
        self.digest = sha256()
        self.total = 0
        self.preview = b""
        self.done = False

    def wants_input(self) -> bool:
        return True

    def feed(self, data: bytes) -> None:
        self.total += len(data)
        self.digest.update(data)
        if len(self.preview) < PREVIEW:
            self.preview += data[:PREVIEW - len(self.preview)]
        self.conn.write(data)

    def flushed(self) -> None:
        pass

    def record(self, error: str | None = None) -> None:
        if self.done:
            return
        self.done = True
        conn = self.conn
        service = conn.service
        extra = conn.facts
        record(service.kind, service.protocol, service.port, conn.peer, self.preview, self.total,
               self.total, self.digest.hexdigest(), **extra, error=error)

    def eof(self) -> None:
        self.record()
        self.conn.finish()

    def aborted(self, reason: str) -> None:
        self.record(reason if not reason.startswith("reset") else None)

    def timed_out(self) -> None:
        self.record(f"idle timeout: nothing moved for {IDLE_TIMEOUT:g}s")
        self.conn.close()

    def handshake_failed(self, reason: str) -> None:
        if not self.done:
            self.done = True
            service = self.conn.service
            record(service.kind, service.protocol, service.port, self.conn.peer, b"", 0, 0,
                   EMPTY_SHA256, error=reason)

    def release(self) -> None:
        pass


EMPTY_SHA256 = sha256(b"").hexdigest()


# -- HTTP ----------------------------------------------------------------------------------

HTTP_METHODS = {"GET", "POST", "PUT", "DELETE", "PATCH", "HEAD"}
REASONS: dict[int, str] = {}
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


# -- UDP -----------------------------------------------------------------------------------

class Datagrams:
    """A socket of datagrams (UDP, or raw IP) the loop reads in batches; each kind says what
    it does with one datagram in `received`."""

    def __init__(self, loop: Loop, sock: socket.socket, buffer_size: int = 65535):
        self.sock = sock
        self.sock.setblocking(False)
        self.buffer = bytearray(buffer_size)
        loop.selector.register(self.sock, selectors.EVENT_READ, self.on_event)

    @staticmethod
    def udp(port: int, family: int) -> socket.socket:
        sock = bound(family, socket.SOCK_DGRAM, port)
        # A burst of datagrams waits in this buffer while the loop serves the others.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, UDP_BUFFER)
        return sock

    def on_event(self, _mask: int) -> None:
        for _ in range(UDP_BATCH):
            try:
                size, peer = self.sock.recvfrom_into(self.buffer)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # an error queued for this socket: it concerns an earlier send
                continue
            self.received(bytes(self.buffer[:size]), peer)

    def received(self, data: bytes, peer: tuple) -> None:
        raise NotImplementedError

    def send(self, data: bytes, peer: tuple) -> str | None:
        """Send one datagram; why it failed (recorded, never raised), or None."""
        try:
            self.sock.sendto(data, peer)
        except (BlockingIOError, InterruptedError):
            return "send failed: the send buffer is full"
        except OSError as exc:
            return f"send failed: {exc.strerror or exc}"
        return None


class UdpEcho(Datagrams):
    """Each datagram back to its sender. A send that fails (no route, a firewall, a full
    buffer) is recorded with its error; the loop carries on with the next datagram."""

    def __init__(self, loop: Loop, port: int, family: int):
        self.port = port
        super().__init__(loop, self.udp(port, family))

    def received(self, data: bytes, peer: tuple) -> None:
        error = self.send(data, peer)
        record_bytes("udp-echo", "udp", self.port, peer, data, 0 if error else len(data), error=error)


class UdpListener(Datagrams):
    """Records each datagram that reaches its port: sent to the host, to its network's
    broadcast address, or to the multicast group it joins (on every interface; an IPv6
    group on every interface with IPv6). It answers nothing: who heard a broadcast or a
    group's datagram is what a check asks."""

    def __init__(self, loop: Loop, port: int, group: str | None, family: int):
        self.port = port
        sock = self.udp(port, family)
        if group and family_of(group) == socket.AF_INET6 == family:
            for index in ipv6_interfaces().values():  # struct ipv6_mreq: the group, the interface
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP, ipv6_membership(group, index))
        elif group and family_of(group) == socket.AF_INET == family:
            for index, name in socket.if_nameindex():
                if name != "lo":  # struct ip_mreqn: the group, any local address, the interface
                    request = socket.inet_aton(group) + socket.inet_aton("0.0.0.0") + index.to_bytes(4, sys.byteorder)
                    sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, request)
        super().__init__(loop, sock)

    def received(self, data: bytes, peer: tuple) -> None:
        record_bytes("udp-listener", "udp", self.port, peer, data, 0)


def dns_record(service, peer: tuple, query: bytes, facts: dict, answer: bytes, protocol: str) -> None:
    record("dns", protocol, service.port, peer, facts.get("qname", "").encode(), len(query), len(answer),
           sha256(query).hexdigest(), qname=facts.get("qname"), qtype=facts.get("qtype"),
           rcode=facts.get("rcode"), answers=facts.get("answers"), error=facts.get("error"))


class DnsUdp(Datagrams):
    """The lab's DNS over UDP: one answer per query, from the zone (services/dnszone.py)."""

    def __init__(self, loop: Loop, service: Service, family: int):
        self.service = service
        # A query is small; more is cut and answered FORMERR.
        super().__init__(loop, bound(family, socket.SOCK_DGRAM, service.port), 4096)

    def received(self, query: bytes, peer: tuple) -> None:
        answer, facts = self.service.zone.answer(query)
        error = self.send(answer if len(answer) <= 512 else _truncated(answer), peer)
        if error:
            facts["error"] = error
        dns_record(self.service, peer, query, facts, answer, "udp")


def _truncated(answer: bytes) -> bytes:
    """Too long for UDP: the header and question only, with TC set (ask again over TCP)."""
    import dnszone
    try:
        end = dnszone.parse_question(answer)[4]
    except dnszone.FormatError:
        end = 12
    flags = int.from_bytes(answer[2:4], "big") | 0x0200
    return answer[:2] + flags.to_bytes(2, "big") + answer[4:6] + b"\0\0\0\0\0\0" + answer[12:end]


class DnsApp:
    """The lab's DNS over TCP: each query is two length bytes and the message; answered the
    same way, on the same connection, until the client closes."""

    __slots__ = ("conn", "pending")

    def __init__(self, conn: Conn):
        self.conn = conn
        self.pending = b""

    def wants_input(self) -> bool:
        return True

    def feed(self, data: bytes) -> None:
        self.pending += data
        while len(self.pending) >= 2:
            size = int.from_bytes(self.pending[:2], "big")
            if len(self.pending) < 2 + size:
                if len(self.pending) > 2 + 65535:
                    self.conn.close()
                return
            query, self.pending = self.pending[2:2 + size], self.pending[2 + size:]
            answer, facts = self.conn.service.zone.answer(query)
            self.conn.write(len(answer).to_bytes(2, "big") + answer)
            dns_record(self.conn.service, self.conn.peer, query, facts, answer, "tcp")

    def flushed(self) -> None:
        pass

    def eof(self) -> None:
        self.conn.finish()

    def aborted(self, reason: str) -> None:
        pass

    def timed_out(self) -> None:
        self.conn.close()

    def handshake_failed(self, reason: str) -> None:
        pass

    def release(self) -> None:
        pass


class RawListener(Datagrams):
    """Records each IP packet of one protocol number that reaches the host (a raw socket:
    NET_RAW, one of Docker's default capabilities). It answers nothing. An IPv4 raw socket
    reads the IP header too, an IPv6 one only what follows it."""

    def __init__(self, loop: Loop, protocol: int, family: int):
        self.protocol, self.family = protocol, family
        super().__init__(loop, socket.socket(family, socket.SOCK_RAW, protocol))

    def received(self, packet: bytes, peer: tuple) -> None:
        header = (packet[0] & 0x0F) * 4 if packet and self.family == socket.AF_INET else 0
        record_bytes("raw-listener", "raw", self.protocol, (peer[0], None), packet[header:], 0)


# -- services ------------------------------------------------------------------------------

class Service:
    def __init__(self, kind: str, port: int, client_cert: str = "none", zone=None):
        self.kind, self.port = kind, port
        self.protocol = {"tcp-echo": "tcp", "tls-echo": "tls", "http": "http", "https": "http", "dns": "tcp"}[kind]
        self.app = EchoApp if kind in ("tcp-echo", "tls-echo") else DnsApp if kind == "dns" else HttpApp
        self.context = tls_context(client_cert) if kind in ("tls-echo", "https") else None
        self.zone = zone


def distinguished_name(parts) -> str:  # replaced by probe's when TLS is configured
    raise NotImplementedError


def _import_tls() -> None:
    global ssl, distinguished_name
    if ssl is None:
        import ssl as module

        # The probe beside this file formats certificate names; the server reports them alike.
        from probe import distinguished_name as name
        ssl, distinguished_name = module, name


def _import_http() -> None:
    if not REASONS:
        from http import HTTPStatus
        REASONS.update({status.value: status.phrase for status in HTTPStatus})


def tls_context(client_cert: str = "none"):
    """Server context; client_cert is none, optional or required (mutual TLS against the lab CA)."""
    _import_tls()
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


def raise_file_limit() -> int:
    """Lift the soft limit on open files to the hard one (unprivileged processes may): a
    server meant to hold a thousand connections must not stop at 1024 descriptors."""
    try:
        import resource
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        want = 65536 if hard == resource.RLIM_INFINITY else min(hard, 65536)
        if soft != resource.RLIM_INFINITY and soft < want:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
            soft = want
        return soft if soft != resource.RLIM_INFINITY else 65536
    except (ImportError, ValueError, OSError):
        return 1024


def main(argv: list[str]) -> int:
    global MAX_CONNECTIONS
    specs = json.loads(argv[1]) if len(argv) > 1 else []
    os.makedirs(os.path.dirname(TRANSCRIPT), exist_ok=True)
    open(TRANSCRIPT, "a").close()
    MAX_CONNECTIONS = max(16, min(MAX_CONNECTIONS, raise_file_limit() - 64))
    loop = Loop()
    for spec in specs:
        kind, port = spec["kind"], int(spec["port"])
        # Each server listens on IPv4 and on IPv6, with a socket for each family.
        if kind == "udp-echo":
            each_family(lambda family: UdpEcho(loop, port, family))
            continue
        if kind == "raw-listener":  # its "port" is the protocol number it listens for
            each_family(lambda family: RawListener(loop, port, family))
            continue
        if kind == "udp-listener":
            each_family(lambda family: UdpListener(loop, port, spec.get("group"), family))
            continue
        if kind == "dns":
            import dnszone  # beside this file; only a host that serves DNS loads it
            zone = dnszone.Zone(spec["zone"], spec.get("hosts") or {}, spec.get("records") or [],
                                spec.get("server") or "ns")
            service = Service(kind, port, zone=zone)
            each_family(lambda family: DnsUdp(loop, service, family))
            each_family(lambda family: Listener(loop, service, family))
            continue
        if kind not in ("tcp-echo", "tls-echo", "http", "https"):
            raise SystemExit(f"labsvc: unknown service '{kind}'")
        if kind in ("http", "https"):
            _import_http()
        service = Service(kind, port, spec.get("client_cert") or "none")
        each_family(lambda family: Listener(loop, service, family))
    print(f"labsvc: serving {', '.join(s['kind'] + ':' + str(s['port']) for s in specs) or 'nothing'}",
          flush=True)
    loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
