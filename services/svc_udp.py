"""Datagrams for the built-in servers (services/labsvc.py): a socket the event loop reads in
batches, udp-echo and udp-listener. svc_dns and svc_raw build on `Datagrams` too.

No two built-in servers can be set ping-ponging. A server that answers datagrams
(udp-echo, and dns over UDP) sends its answer to the source port of what it received, and
never answers a datagram from a port in `quiet`: port 0, and every port where the lab's
answering datagram servers listen, on any host (labctl lists them in each such service's
spec, `never_answer_ports`; labsvc adds its own host's). So an answer always goes to a
port where no answering built-in server listens, and is never answered in turn, whatever
address a spoofed datagram claims to come from: a chain of built-in answers is one long.
The DNS server adds its own rule: it answers queries only, never a response (svc_dns).

udp-echo counts a failed send in the transcript and carries on. Standard library only.
"""

from __future__ import annotations

import selectors
import socket
import sys

from inet import family_of, ipv6_interfaces, ipv6_membership  # beside this file
from svc_loop import Loop, bound
from svc_transcript import record_bytes

UDP_BATCH = 256           # datagrams per wake-up, so a flood cannot starve the others
UDP_BUFFER = 4 << 20      # asked for; the kernel gives at most net.core.rmem_max
NEVER_ANSWERED = frozenset({0})   # a datagram from port 0 cannot be answered


def unanswerable(peer: tuple, quiet: frozenset[int]) -> str | None:
    """Why a datagram from `peer` gets no answer (see the module's doc), or None."""
    port = peer[1]
    if port == 0:
        return "not answered: it came from port 0"
    if port in quiet:
        return (f"not answered: it came from port {port}, where the lab's built-in datagram "
                "servers listen (an answer could start a loop between them)")
    return None


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
    """Each datagram back to its sender, unless it came from a port in `quiet`. A send
    that fails (no route, a firewall, a full buffer) is recorded with its error; the loop
    carries on with the next datagram."""

    def __init__(self, loop: Loop, port: int, family: int, quiet: frozenset[int] = NEVER_ANSWERED):
        self.port, self.quiet = port, quiet
        super().__init__(loop, self.udp(port, family))

    def received(self, data: bytes, peer: tuple) -> None:
        error = unanswerable(peer, self.quiet) or self.send(data, peer)
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
