"""TCP for the built-in servers (services/labsvc.py): the listener, a connection driven by
the event loop (svc_loop), and tcp-echo's application. TLS connections (svc_tls.TlsConn)
and the HTTP and DNS applications (svc_http, svc_dns) build on these.

A connection holds its socket, the output it could not send yet, and its application, which
answers feed(data), eof(), flushed(), aborted(reason), timed_out(), handshake_failed(reason),
release() and wants_input(). An echo holds at most about one read (CHUNK) of unsent output
and stops reading until it is sent, so a flood or a client that never reads stalls itself.
Standard library only.
"""

from __future__ import annotations

import errno
import selectors
import socket

from inet import endpoint  # beside this file
from svc_loop import ACCEPT_BATCH, CHUNK, IDLE_TIMEOUT, LINGER, Loop, bound
from svc_transcript import EMPTY_SHA256, PREVIEW, record, sha256


class Listener:
    def __init__(self, loop: Loop, service, family: int):
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
            if len(loop.conns) >= loop.max_connections:
                loop.make_room()
            sock.setblocking(False)
            self.service.conn(loop, sock, endpoint(peer), self.service)


class Conn:
    """One TCP connection: the socket, unsent output and its application (EchoApp,
    HttpApp or DnsApp). States: open, closing (send what is left, then half-close),
    draining (half-closed: discard input until EOF or the linger ends), closed."""

    __slots__ = ("loop", "sock", "fd", "peer", "service", "app", "out", "established", "state",
                 "mask", "deadline", "idle_based", "active", "accepted", "read_eof", "linger",
                 "facts")

    def __init__(self, loop: Loop, sock: socket.socket, peer: tuple, service):
        self.loop, self.sock, self.fd, self.peer, self.service = loop, sock, sock.fileno(), peer, service
        self.out = bytearray()
        self.established = True   # a TLS connection is not until its handshake ends
        self.state = "open"
        self.read_eof = False
        self.linger = LINGER
        self.facts: dict = {}  # TLS facts for the transcript, taken when the handshake ends
        self.accepted = self.active = loop.now
        self.mask = 0
        self.app = service.app(self)
        self.deadline, self.idle_based = loop.now + IDLE_TIMEOUT, True
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
        if self.state != "open" or self.read_eof:
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
        if not self.closed:
            self.resume_input()
        self.settle()

    def resume_input(self) -> None:
        """Input held back while output had no room (TLS: what OpenSSL still holds)."""

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
        self.received(data)

    def received(self, data: bytes) -> None:
        """What was read (b"" at the end of the stream) goes to the application."""
        if data:
            self.app.feed(data)
        else:
            self.app.eof()

    # output
    def write(self, data: bytes) -> None:
        if self.closed or self.state == "draining":
            return
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
        self.end_of_output()
        self.state = "closing"
        self.set_deadline(IDLE_TIMEOUT, True)
        self.linger = linger
        if not self.out:
            self.half_close()

    def end_of_output(self) -> None:
        """What goes out before the half-close (TLS: its close_notify)."""

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
