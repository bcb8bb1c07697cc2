"""TLS for the built-in servers (services/labsvc.py): tls-echo's and https's server context
and the TLS connection, an OpenSSL object driven through memory BIOs by the event loop.

Only a host that serves TLS imports this module (and with it ssl, and probe's certificate
name formatting): a host serving a plain tcp-echo stays small.

  - a TLS handshake must finish within HANDSHAKE_TIMEOUT of the accept;
  - OpenSSL gets nothing before the client's first record is whole, then the connection
    needs one of the loop's MAX_HANDSHAKES slots (each handshake holds ~45 KB in OpenSSL);
    a newcomer waits for a slot, or takes the slot of one stuck longer than HANDSHAKE_GRACE.
Standard library only.
"""

from __future__ import annotations

import os
import ssl

from probe import distinguished_name  # beside this file: certificate names written alike
from svc_loop import CHUNK, IDLE_TIMEOUT, limit, reason
from svc_tcp import Conn

PKI = os.environ.get("LABCTL_PKI", "/opt/labctl/pki")
HANDSHAKE_TIMEOUT = limit("LABCTL_SVC_HANDSHAKE_TIMEOUT", 10.0)  # accept -> TLS established


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


def first_record_complete(data: bytes) -> bool:
    """Whether `data` holds the first TLS record whole (or is plainly not a handshake)."""
    if len(data) < 5:
        return False
    if data[0] != 0x16 or len(data) > 5 + 16384 + 2048:
        return True  # not a handshake record, or an oversized one: OpenSSL says why
    return len(data) >= 5 + int.from_bytes(data[3:5], "big")


class TlsConn(Conn):
    """A TCP connection with TLS on it: the application sees plain data once the
    handshake is established."""

    __slots__ = ("tls", "bio_in", "bio_out", "waiting_slot", "held")

    def __init__(self, loop, sock, peer: tuple, service):
        self.tls = self.bio_in = self.bio_out = None
        self.waiting_slot = False
        self.held = None   # a TLS client's first bytes, until its first record is whole
        super().__init__(loop, sock, peer, service)
        self.established = False
        self.set_deadline(HANDSHAKE_TIMEOUT, False)

    def wants_read(self) -> bool:
        if self.waiting_slot and self.state != "draining":
            return False
        return super().wants_read()

    def resume_input(self) -> None:
        if self.tls is not None and self.established and self.state == "open":
            self.pump()  # input OpenSSL still holds, now that output has room

    def received(self, data: bytes) -> None:
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
                self.app.handshake_failed(f"handshake failed: {reason(exc)}")
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
                self.app.aborted(f"tls error: {reason(exc)}")
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

    def write(self, data: bytes) -> None:
        if self.closed or self.state == "draining":
            return
        if self.tls is not None:
            self.tls.write(data)
            self.tls_output()
        else:
            self.out += data

    def end_of_output(self) -> None:
        if self.tls is not None and self.established:
            try:
                self.tls.unwrap()  # close_notify: the client reads a clean end of stream
            except (ssl.SSLError, ValueError):
                pass
            self.tls_output()

    def timed_out(self) -> None:
        if self.state == "open" and not self.established:
            self.app.handshake_failed(f"handshake timeout: not established within "
                                      f"{HANDSHAKE_TIMEOUT:g}s")
            self.close()
            return
        super().timed_out()

    def close(self) -> None:
        if self.closed:
            return
        self.loop.free_slot(self)
        super().close()
        self.tls = self.bio_in = self.bio_out = self.held = None

    def tls_facts(self) -> dict:
        cert = self.tls.getpeercert()
        subject = distinguished_name(cert.get("subject", ())) if cert else None
        return {"tls_version": self.tls.version(), "server_name": getattr(self.tls, "labctl_sni", None),
                "client_subject": subject}
