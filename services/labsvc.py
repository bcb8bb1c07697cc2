#!/usr/bin/env python3
"""Built-in lab servers: tcp-echo, udp-echo, tls-echo, http, https, udp-listener, dns and
raw-listener, all in one process.

Usage: labsvc.py '<json list of {"kind": ..., "port": ..., "client_cert": ..., ...}>'
Standard library only: this runs inside lab containers.

This is the entry point; the parts live beside it, one module each, and a host imports
only those its services need (a plain tcp-echo loads neither ssl nor http nor the DNS):

  svc_loop        the event loop, its deadlines and shared limits, both families' sockets
  svc_transcript  one JSON line per exchange, in the file and on standard output
  svc_tcp         the listener, a TCP connection, tcp-echo
  svc_tls         tls-echo's and https's TLS connection and context
  svc_http        http and https
  svc_udp         datagram sockets, udp-echo, udp-listener, the rule against ping-pong
  svc_dns         the lab's DNS over UDP and TCP (its zone: dnszone)
  svc_raw         raw-listener

Every exchange served is appended as one JSON line to the transcript
(/var/log/labctl/transcript.jsonl, rotated to keep the newest), so checks can assert what
the server saw; the same line goes to standard output after "transcript ", where labctl
reads it through the engine's log API. "labsvc: serving ..." on standard output says every
server listens: the host is ready. Every server listens on IPv4 and on IPv6 (a socket for
each; IPv6 where the host has it), and writes its peers as services/inet.py does.

One thread serves everything, and abuse costs only the connection that does it: idle and
stalled connections time out, connections and TLS handshakes in progress are capped (the
least recently active give way), output a connection holds is bounded, HTTP sizes are
capped. Each module's doc says its bounds.

Environment (numbers): LABCTL_TRANSCRIPT, LABCTL_PKI, and LABCTL_SVC_IDLE_TIMEOUT,
LABCTL_SVC_HANDSHAKE_TIMEOUT, LABCTL_SVC_REQUEST_TIMEOUT, LABCTL_SVC_MAX_CONNECTIONS,
LABCTL_SVC_MAX_BODY, LABCTL_SVC_TRANSCRIPT_CAP override the limits.
"""

from __future__ import annotations

import json
import os
import sys

# Beside this file: `python3 -E -s -S labsvc.pyc` keeps the script's folder importable.
from svc_loop import MAX_CONNECTIONS, Loop, each_family, raise_file_limit
from svc_tcp import Conn, EchoApp, Listener
from svc_transcript import TRANSCRIPT
from svc_udp import NEVER_ANSWERED, UdpEcho, UdpListener

ANSWERS_DATAGRAMS = ("udp-echo", "dns")   # the kinds that answer what reaches their UDP port
STREAM_KINDS = ("tcp-echo", "tls-echo", "http", "https")


class Service:
    """One configured TCP service (a dns service's TCP side too): what its connections are
    and what runs on them."""

    def __init__(self, kind: str, port: int, app, conn=Conn, context=None, zone=None):
        self.kind, self.port = kind, port
        self.protocol = {"tcp-echo": "tcp", "tls-echo": "tls", "http": "http", "https": "http", "dns": "tcp"}[kind]
        self.app, self.conn, self.context, self.zone = app, conn, context, zone


def quiet_ports(specs: list[dict]) -> frozenset[int]:
    """Source ports whose datagrams no server here answers (see svc_udp): port 0, where this
    host's answering datagram servers listen, and those labctl lists for the whole lab."""
    ports = set(NEVER_ANSWERED)
    for spec in specs:
        if spec["kind"] in ANSWERS_DATAGRAMS:
            ports.add(int(spec["port"]))
        ports.update(int(port) for port in spec.get("never_answer_ports") or ())
    return frozenset(ports)


def stream_service(kind: str, port: int, client_cert: str) -> Service:
    """A TCP service, importing what it needs only now."""
    if kind in ("tls-echo", "https"):
        from svc_tls import TlsConn, tls_context
        conn, context = TlsConn, tls_context(client_cert)
    else:
        conn, context = Conn, None
    if kind in ("http", "https"):
        from svc_http import HttpApp
        return Service(kind, port, HttpApp, conn, context)
    return Service(kind, port, EchoApp, conn, context)


def main(argv: list[str]) -> int:
    specs = json.loads(argv[1]) if len(argv) > 1 else []
    os.makedirs(os.path.dirname(TRANSCRIPT), exist_ok=True)
    open(TRANSCRIPT, "a").close()
    loop = Loop(max(16, min(MAX_CONNECTIONS, raise_file_limit() - 64)))
    quiet = quiet_ports(specs)
    for spec in specs:
        kind, port = spec["kind"], int(spec["port"])
        # Each server listens on IPv4 and on IPv6, with a socket for each family.
        if kind == "udp-echo":
            each_family(lambda family: UdpEcho(loop, port, family, quiet))
        elif kind == "raw-listener":  # its "port" is the protocol number it listens for
            from svc_raw import RawListener
            each_family(lambda family: RawListener(loop, port, family))
        elif kind == "udp-listener":
            each_family(lambda family: UdpListener(loop, port, spec.get("group"), family))
        elif kind == "dns":
            import dnszone
            from svc_dns import DnsApp, DnsUdp
            zone = dnszone.Zone(spec["zone"], spec.get("hosts") or {}, spec.get("records") or [],
                                spec.get("server") or "ns")
            service = Service(kind, port, DnsApp, zone=zone)
            each_family(lambda family: DnsUdp(loop, service, family, quiet))
            each_family(lambda family: Listener(loop, service, family))
        elif kind in STREAM_KINDS:
            service = stream_service(kind, port, spec.get("client_cert") or "none")
            each_family(lambda family: Listener(loop, service, family))
        else:
            raise SystemExit(f"labsvc: unknown service '{kind}'")
    print(f"labsvc: serving {', '.join(s['kind'] + ':' + str(s['port']) for s in specs) or 'nothing'}",
          flush=True)
    loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
