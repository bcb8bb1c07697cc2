"""The built-in servers' event loop (services/labsvc.py): one thread, one selector (epoll)
owning every listening socket, connection and datagram socket, with the deadlines and the
shared limits that keep abuse to the connection doing it. Also the sockets of both
families every server listens on. Standard library only: this runs inside lab containers.

Whatever a selector key's data is gets called with the event mask: a listener's `accept`,
a connection's `on_event`, a datagram socket's `on_event`. A connection (svc_tcp.Conn) is
registered in `Loop.conns` by its descriptor, and answers `deadline`, `timed_out`,
`settle`, `evict` and `close`; the loop needs nothing else of it.
"""

from __future__ import annotations

import collections
import errno
import os
import selectors
import socket
import sys
import time


def limit(name: str, default: float) -> float:
    """A number from the environment (LABCTL_SVC_*), or the default when unset or not one."""
    try:
        return float(os.environ.get(name, default))
    except ValueError:
        return default


IDLE_TIMEOUT = limit("LABCTL_SVC_IDLE_TIMEOUT", 30.0)          # no progress either way
LINGER = 2.0              # after a refusal: half-close, discard what still comes, then close
MAX_CONNECTIONS = int(limit("LABCTL_SVC_MAX_CONNECTIONS", 4096))
MAX_HANDSHAKES = 128
HANDSHAKE_GRACE = 1.0     # when all are taken, one older than this yields to a newcomer
CHUNK = 65536             # one read; also the most output a connection holds unsent
ACCEPT_BATCH = 64
SWEEP = 0.25              # how often deadlines are looked at, while there are any


def reason(exc: BaseException) -> str:
    return getattr(exc, "reason", None) or getattr(exc, "strerror", None) or exc.__class__.__name__


class Loop:
    def __init__(self, max_connections: int = MAX_CONNECTIONS):
        self.selector = selectors.DefaultSelector()
        self.conns: dict[int, object] = {}   # fd -> svc_tcp.Conn
        self.max_connections = max_connections
        self.now = time.monotonic()
        self.body_reserved = 0          # bytes of HTTP bodies in flight
        self.handshakes: dict[int, tuple] = {}  # fd -> (connection, since) holding a slot
        self.waiting: collections.deque = collections.deque()  # waiting for a slot
        self.paused: list = []          # listeners paused after EMFILE, with their resume time
        self.errors = 0
        self.next_sweep = time.monotonic() + SWEEP

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
        while not stop:
            self.turn()

    def turn(self, most: float | None = None) -> int:
        """One round: wait for events (until the next sweep, or `most` seconds), serve them,
        then hand out handshake slots and look at deadlines when due. The events served.
        With no connection, no paused listener and nobody waiting there is no deadline to
        look at, so an idle server sleeps until something arrives: it never wakes by itself."""
        idle = not self.conns and not self.paused and not self.waiting
        wait = None if idle else max(0.0, self.next_sweep - time.monotonic())
        if most is not None:
            wait = most if wait is None else min(wait, most)
        events = self.selector.select(wait)
        self.now = time.monotonic()
        for key, mask in events:
            try:
                key.data(mask)
            except Exception as exc:  # a bug in one exchange must not stop the others
                self.failed(key, exc)
        if self.waiting and len(self.handshakes) < MAX_HANDSHAKES:
            self.grant_slots()
        if self.now >= self.next_sweep:
            self.sweep()
            self.next_sweep = self.now + SWEEP
        return len(events)

    def failed(self, key, exc: Exception) -> None:
        self.errors += 1
        if self.errors <= 50:
            print(f"labsvc: internal error: {exc.__class__.__name__}: {exc}", file=sys.stderr,
                  flush=True)
        owner = getattr(key.data, "__self__", None)
        if self.conns.get(getattr(owner, "fd", None)) is owner:  # a connection: close it
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

    # TLS handshake slots (svc_tls.TlsConn takes one from its first whole record to the
    # end of its handshake)
    def take_slot(self, conn) -> bool:
        if len(self.handshakes) >= MAX_HANDSHAKES:
            oldest, since = min(self.handshakes.values(), key=lambda held: held[1])
            if self.now - since < HANDSHAKE_GRACE:
                return False
            oldest.evict(f"handshake evicted: {MAX_HANDSHAKES} handshakes in progress and it "
                         f"took over {HANDSHAKE_GRACE:g}s")
        self.handshakes[conn.fd] = (conn, self.now)
        return True

    def free_slot(self, conn) -> None:
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
