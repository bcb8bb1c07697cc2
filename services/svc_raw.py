"""raw-listener for the built-in servers (services/labsvc.py): records the IP packets of one
protocol number that reach the host, and answers nothing. Standard library only."""

from __future__ import annotations

import socket

from svc_loop import Loop
from svc_transcript import record_bytes
from svc_udp import Datagrams


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
