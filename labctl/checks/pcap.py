"""A small pcap reader: enough of IPv4, IPv6, TCP and UDP for wire checks, and a merge of
the captures taken at several interfaces of one overlay network."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address
from typing import Iterator

from ..errors import LabError


@dataclass
class Packet:
    time: float
    source: str
    destination: str
    protocol: str               # tcp | udp | icmp | ip
    source_port: int = 0
    destination_port: int = 0
    flags: int = 0              # TCP flags
    payload: bytes = b""

    @property
    def syn(self) -> bool:
        return self.protocol == "tcp" and bool(self.flags & 0x02) and not self.flags & 0x10

    @property
    def syn_ack(self) -> bool:
        return self.protocol == "tcp" and self.flags & 0x12 == 0x12

    def __str__(self) -> str:
        ports = (f":{self.source_port}", f":{self.destination_port}") if self.source_port else ("", "")
        return f"{self.source}{ports[0]} → {self.destination}{ports[1]} {self.protocol}"


# link type -> how many bytes precede the IP header, and where the EtherType sits (None:
# raw IP, whose version nibble tells the family)
LINK_TYPES = {1: (14, 12), 113: (16, 14), 276: (20, 0), 101: (0, None), 228: (0, None), 229: (0, None)}
ETHERTYPES = {b"\x08\x00": 4, b"\x86\xdd": 6}   # ARP and the rest are no lab traffic

# IPv6 extension headers skipped on the way to the transport: hop-by-hop, routing,
# destination options. A fragment header (44) is read apart; a longer chain than this is
# taken for garbage, and the loop over it stays bounded.
IPV6_SKIPPED = (0, 43, 60)
IPV6_MAX_EXTENSIONS = 8
# ICMPv6 neighbour discovery (router and neighbour solicitation and advertisement,
# redirect): IPv6's ARP, kept out of what is judged as ARP is.
NEIGHBOUR_DISCOVERY = range(133, 138)


def merge_pcaps(files: list[bytes]) -> bytes:
    """One pcap from several of one link type, in time order. A frame seen at both ends of
    a segment (the same bytes within half a second) is kept once."""
    files = [data for data in files if len(data) >= 24]
    if not files:
        return b""
    header = files[0][:24]
    records: list[tuple[float, bytes, bytes]] = []
    for data in files:
        if data[:4] != header[:4] or data[20:24] != header[20:24]:
            raise LabError("the captures to merge differ in format or link type")
        order = "<" if data[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
        nanos = data[:4] in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d")
        offset = 24
        while offset + 16 <= len(data):
            seconds, fraction, length, _ = struct.unpack_from(order + "IIII", data, offset)
            end = offset + 16 + length
            records.append((seconds + fraction / (1e9 if nanos else 1e6), data[offset:offset + 16],
                            data[offset + 16:end]))
            offset = end
    records.sort(key=lambda record: record[0])
    merged, last_seen = [header], dict[bytes, float]()
    for stamp, record_header, frame in records:
        if stamp - last_seen.get(frame, -1.0) < 0.5:
            continue
        last_seen[frame] = stamp
        merged += [record_header, frame]
    return b"".join(merged)


def read_pcap(data: bytes) -> Iterator[Packet]:
    if len(data) < 24:
        return
    magic = data[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        order = "<"
    elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        order = ">"
    else:
        raise LabError("the capture is not a pcap file")
    nanos = magic in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d")
    link = struct.unpack_from(order + "I", data, 20)[0]
    if link not in LINK_TYPES:
        raise LabError(f"the capture has link type {link}, which labctl cannot read")
    offset_ip, type_at = LINK_TYPES[link]
    offset = 24
    while offset + 16 <= len(data):
        seconds, fraction, length, _ = struct.unpack_from(order + "IIII", data, offset)
        frame = data[offset + 16:offset + 16 + length]
        offset += 16 + length
        family = ETHERTYPES.get(frame[type_at:type_at + 2]) if type_at is not None else None
        if type_at is not None and family is None:
            continue
        ip, stamp = frame[offset_ip:], seconds + fraction / (1e9 if nanos else 1e6)
        version = ip[0] >> 4 if ip else 0
        if family not in (None, version):
            continue
        packet = _ip_packet(ip, stamp) if version == 4 else _ip6_packet(ip, stamp) if version == 6 else None
        if packet:
            yield packet


def _ip_packet(ip: bytes, stamp: float) -> Packet | None:
    if len(ip) < 20 or ip[0] >> 4 != 4:
        return None
    header = (ip[0] & 0x0F) * 4
    total = struct.unpack_from("!H", ip, 2)[0]
    body = ip[header:total] if total >= header else ip[header:]
    source, destination = str(IPv4Address(ip[12:16])), str(IPv4Address(ip[16:20]))
    return _transport(stamp, source, destination, ip[9], body)


def _ip6_packet(ip: bytes, stamp: float) -> Packet | None:
    """An IPv6 packet, its extension headers skipped; None if truncated or malformed. A
    fragment other than the first has no transport header: it comes as protocol `ip` with
    its bytes, so no_plaintext still reads them."""
    if len(ip) < 40 or ip[0] >> 4 != 6:
        return None
    length = struct.unpack_from("!H", ip, 4)[0]
    body = ip[40:40 + length] if length else ip[40:]   # 0: a jumbogram (so BIG TCP's)
    source, destination = str(IPv6Address(ip[8:24])), str(IPv6Address(ip[24:40]))
    number = ip[6]
    for _ in range(IPV6_MAX_EXTENSIONS):
        if number in IPV6_SKIPPED:
            if len(body) < 2 or len(body) < (body[1] + 1) * 8:
                return None
            number, body = body[0], body[(body[1] + 1) * 8:]
        elif number == 44:                           # fragment
            if len(body) < 8:
                return None
            if struct.unpack_from("!H", body, 2)[0] >> 3:
                return Packet(stamp, source, destination, "ip", payload=body[8:])
            number, body = body[0], body[8:]
        else:
            break
    if number in IPV6_SKIPPED or number == 44:      # a longer chain than any real packet's
        return None
    if number == 58 and body and body[0] in NEIGHBOUR_DISCOVERY:
        return None
    return _transport(stamp, source, destination, number, body)


def _transport(stamp: float, source: str, destination: str, number: int, body: bytes) -> Packet:
    """The packet by its transport: alike for both families (ICMPv6 is 58)."""
    if number == 6 and len(body) >= 20:
        ports = struct.unpack_from("!HH", body)
        data_offset = (body[12] >> 4) * 4
        return Packet(stamp, source, destination, "tcp", ports[0], ports[1], body[13], body[data_offset:])
    if number == 17 and len(body) >= 8:
        ports = struct.unpack_from("!HH", body)
        return Packet(stamp, source, destination, "udp", ports[0], ports[1], 0, body[8:])
    return Packet(stamp, source, destination, "icmp" if number in (1, 58) else "ip", payload=body)


def client_hello_server_name(payload: bytes) -> str | None:
    """The SNI of a TLS ClientHello at the start of a TCP payload, '' if it names none,
    None if the payload is no ClientHello."""
    if len(payload) < 9 or payload[0] != 0x16 or payload[5] != 0x01:
        return None
    try:
        position = 9 + 2 + 32                        # handshake header, version, random
        position += 1 + payload[position]            # session id
        position += 2 + struct.unpack_from("!H", payload, position)[0]   # cipher suites
        position += 1 + payload[position]            # compression methods
        end = position + 2 + struct.unpack_from("!H", payload, position)[0]
        position += 2
        while position + 4 <= min(end, len(payload)):
            kind, length = struct.unpack_from("!HH", payload, position)
            if kind == 0:                            # server_name
                name_length = struct.unpack_from("!H", payload, position + 7)[0]
                return payload[position + 9:position + 9 + name_length].decode("ascii", "replace")
            position += 4 + length
    except (IndexError, struct.error):
        return ""
    return ""
