"""The lab's DNS for the built-in servers (services/labsvc.py): the dns service over UDP and
over TCP, answering from the zone (services/dnszone.py).

It answers queries only: a message with the QR bit set (a response), or one it cannot
read as a query, is recorded and never answered, so an unsolicited or spoofed response
cannot start an exchange. Over UDP it never answers a datagram from a port where the lab's
answering datagram servers listen (svc_udp.unanswerable), so it cannot ping-pong with them.
Over TCP a connection's answers wait while more than MAX_PENDING_OUT bytes of earlier ones
are unsent, and its input is not read meanwhile: a client that sends queries and never
reads its answers holds a small buffer, and is closed by the idle timeout.
Only a host that serves DNS imports this module. Standard library only.
"""

from __future__ import annotations

import socket

import dnszone  # beside this file
from svc_loop import Loop, bound
from svc_tcp import Conn
from svc_transcript import record, sha256
from svc_udp import NEVER_ANSWERED, Datagrams, unanswerable

UDP_ANSWER = 512          # longer answers over UDP go truncated (TC): ask again over TCP
MAX_DATAGRAM = 4096       # a query is small; a longer datagram is cut to this
MAX_PENDING_OUT = 16384   # unsent answers a TCP connection may hold before it stops answering


def dns_record(service, peer: tuple, query: bytes, facts: dict, answer: bytes | None, protocol: str) -> None:
    record("dns", protocol, service.port, peer, (facts.get("qname") or "").encode(), len(query),
           len(answer or b""), sha256(query).hexdigest(), qname=facts.get("qname"),
           qtype=facts.get("qtype"), rcode=facts.get("rcode"), answers=facts.get("answers"),
           error=facts.get("error"))


def truncated(answer: bytes) -> bytes:
    """Too long to send: the header and question only, with TC set (ask again over TCP)."""
    try:
        end = dnszone.parse_question(answer)[4]
    except dnszone.FormatError:
        end = 12
    flags = int.from_bytes(answer[2:4], "big") | 0x0200
    return answer[:2] + flags.to_bytes(2, "big") + answer[4:6] + b"\0\0\0\0\0\0" + answer[12:end]


class DnsUdp(Datagrams):
    """The lab's DNS over UDP: at most one answer per query, from the zone."""

    def __init__(self, loop: Loop, service, family: int, quiet: frozenset[int] = NEVER_ANSWERED):
        self.service, self.quiet = service, quiet
        super().__init__(loop, bound(family, socket.SOCK_DGRAM, service.port), MAX_DATAGRAM)

    def received(self, query: bytes, peer: tuple) -> None:
        answer, facts = self.service.zone.answer(query)
        if answer is not None:
            why = unanswerable(peer, self.quiet)
            if why:
                answer, facts["error"] = None, why
            else:
                error = self.send(answer if len(answer) <= UDP_ANSWER else truncated(answer), peer)
                if error:
                    facts["error"] = error
        dns_record(self.service, peer, query, facts, answer, "udp")


class DnsApp:
    """The lab's DNS over TCP: each query is two length bytes and the message; answered the
    same way, on the same connection, until the client closes."""

    __slots__ = ("conn", "pending", "ending")

    def __init__(self, conn: Conn):
        self.conn = conn
        self.pending = bytearray()
        self.ending = False   # the client closed its side: answer what is whole, then finish

    def whole(self) -> bool:
        """Whether a whole query waits in the input."""
        pending = self.pending
        return len(pending) >= 2 and len(pending) >= 2 + int.from_bytes(pending[:2], "big")

    def wants_input(self) -> bool:
        return not self.whole()   # a whole query waits for room to answer it: read no more

    def feed(self, data: bytes) -> None:
        self.pending += data
        self.answer_pending()

    def answer_pending(self) -> None:
        conn, pending, taken = self.conn, self.pending, 0
        while conn.state == "open" and len(conn.out) < MAX_PENDING_OUT and len(pending) - taken >= 2:
            size = int.from_bytes(pending[taken:taken + 2], "big")
            if len(pending) - taken < 2 + size:
                break
            query = bytes(pending[taken + 2:taken + 2 + size])
            taken += 2 + size
            self.serve(query)
        if taken:
            del pending[:taken]   # once per read, not per query: a read holds thousands
        if self.ending and not self.whole():
            conn.finish()

    def serve(self, query: bytes) -> None:
        answer, facts = self.conn.service.zone.answer(query)
        if answer is not None:
            if len(answer) > 65535:   # what two length bytes can say
                answer = truncated(answer)
            self.conn.write(len(answer).to_bytes(2, "big") + answer)
        dns_record(self.conn.service, self.conn.peer, query, facts, answer, "tcp")

    def flushed(self) -> None:
        self.answer_pending()

    def eof(self) -> None:
        self.ending = True
        self.answer_pending()

    def aborted(self, reason: str) -> None:
        pass

    def timed_out(self) -> None:
        self.conn.close()

    def handshake_failed(self, reason: str) -> None:
        pass

    def release(self) -> None:
        pass
