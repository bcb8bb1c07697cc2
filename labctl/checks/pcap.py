"""A small pcap reader: enough of IPv4, TCP and UDP for wire checks, and a merge of the
captures taken at several interfaces of one overlay network."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from ipaddress import IPv4Address
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
        return self.protocol == "tcp" and self.flags & 0x02 and not self.flags & 0x10

    @property
    def syn_ack(self) -> bool:
        return self.protocol == "tcp" and self.flags & 0x12 == 0x12

    def __str__(self) -> str:
        ports = (f":{self.source_port}", f":{self.destination_port}") if self.source_port else ("", "")
        return f"{self.source}{ports[0]} → {self.destination}{ports[1]} {self.protocol}"


# link type -> how many bytes precede the IP header, and where the EtherType sits
LINK_TYPES = {1: (14, 12), 113: (16, 14), 276: (20, 0), 101: (0, None), 228: (0, None)}


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
    merged, last_seen = [header], {}
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
        if type_at is not None and frame[type_at:type_at + 2] != b"\x08\x00":
            continue
        packet = _ip_packet(frame[offset_ip:], seconds + fraction / (1e9 if nanos else 1e6))
        if packet:
            yield packet


def _ip_packet(ip: bytes, stamp: float) -> Packet | None:
    if len(ip) < 20 or ip[0] >> 4 != 4:
        return None
    header = (ip[0] & 0x0F) * 4
    total = struct.unpack_from("!H", ip, 2)[0]
    body = ip[header:total] if total >= header else ip[header:]
    source, destination = str(IPv4Address(ip[12:16])), str(IPv4Address(ip[16:20]))
    number = ip[9]
    if number == 6 and len(body) >= 20:
        ports = struct.unpack_from("!HH", body)
        data_offset = (body[12] >> 4) * 4
        return Packet(stamp, source, destination, "tcp", ports[0], ports[1], body[13], body[data_offset:])
    if number == 17 and len(body) >= 8:
        ports = struct.unpack_from("!HH", body)
        return Packet(stamp, source, destination, "udp", ports[0], ports[1], 0, body[8:])
    return Packet(stamp, source, destination, "icmp" if number == 1 else "ip", payload=body)


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
