"""Packet captures and the wire checks built on them.

A capture runs tcpdump in a short-lived helper: in a host's namespace for `HOST` (every
interface) or `HOST:NETWORK` (one), or in the engine's own namespace on the network's
bridge for `NETWORK`, which sees every frame that crosses that network. The file comes back
through the engine, so nothing is mounted from this machine.

Wire checks read the capture here, with a small pcap reader: a TCP handshake from A to
B:port, a TLS ClientHello naming a server, and no plaintext matching a pattern.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass, field
from ipaddress import IPv4Address
from typing import Any, Callable, Iterator

from .engine import Engine
from .errors import LabError
from .images import SERVICES_PATH
from .render import bridge_name
from .shaping import resolve_target
from .topology import Topology

CAPTURE_FILE = "/tmp/capture.pcap"
READY_TEXT = "listening on"


@dataclass(frozen=True)
class CapturePoint:
    """Where tcpdump listens: in `host`'s namespace (None: the engine's) on `where`."""
    host: str | None
    where: str          # interface name, `any`, or an address whose interface is meant
    label: str


def capture_points(topology: Topology, target: str) -> list[CapturePoint]:
    """Targets read as impairments' do (resolve_target), and fail with the same errors.
    A network is its bridge on one machine; a Swarm's overlay has no bridge labctl can reach,
    so there it is every member's interface on it, merged into one file."""
    interfaces = resolve_target(topology, target)
    if ":" in target or (topology.engine == "swarm" and target not in topology.hosts):
        return [CapturePoint(interface.host,
                             str(topology.hosts[interface.host].address_on(interface.network)),
                             f"{interface.host}:{interface.network}")
                for interface in interfaces]
    if target in topology.hosts:
        return [CapturePoint(target, "any", target)]
    return [CapturePoint(None, bridge_name(topology, target), f"network {target}")]


def capture_label(topology: Topology, target: str) -> str:
    points = capture_points(topology, target)
    return points[0].label if len(points) == 1 else f"network {target} (at {len(points)} interfaces)"


class Capture:
    """A running capture: `with Capture(...) as capture:` ... then `capture.packets`."""

    def __init__(self, topology: Topology, engine: Engine, image: str, target: str,
                 expression: str | None = None):
        self.topology, self.engine, self.image = topology, engine, image
        self.points = capture_points(topology, target)
        self.expression = expression.split() if expression else []
        self.helpers: list[str] = []
        self.data = b""
        self.output = ""

    def start(self) -> Capture:
        points = self.points
        if len(points) > 1:
            # A network is watched at every member that answers; one on a stopped machine
            # cannot send anything onto it anyway.
            away = self.engine.unreachable_hosts(self.topology)
            points = [point for point in points if point.host not in away] or points
        try:
            for point in points:
                argv = ["python3", f"{SERVICES_PATH}/netadmin.py", "capture", point.where, CAPTURE_FILE,
                        *self.expression]
                self.helpers.append(self.engine.start_helper(self.topology, point.host, self.image, argv,
                                                             ["NET_ADMIN", "NET_RAW"], READY_TEXT))
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> bytes:
        files, outputs = [], []
        while self.helpers:
            output, data = self.engine.stop_helper(self.helpers.pop(0), CAPTURE_FILE)
            outputs.append(output)
            files.append(data)
        if files:
            self.output = "\n".join(outputs)
            self.data = files[0] if len(files) == 1 else merge_pcaps(files)
        return self.data

    def __enter__(self) -> Capture:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    @property
    def packets(self) -> list[Packet]:
        return list(read_pcap(self.data))


# -- reading pcap ----------------------------------------------------------------------------

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


# -- wire expectations -----------------------------------------------------------------------

@dataclass
class WireExpectation:
    kind: str                   # handshake | client_hello | no_plaintext
    source: str | None = None   # host
    target: str | None = None   # host
    port: int | None = None
    server_name: str | None = None
    pattern: str | None = None  # regex, for no_plaintext

    def describe(self) -> str:
        if self.kind == "handshake":
            return f"a TCP handshake from {self.source} to {self.target}:{self.port}"
        if self.kind == "client_hello":
            return (f"a TLS ClientHello naming {self.server_name}"
                    + (f" from {self.source}" if self.source else ""))
        return f"no plaintext matching {self.pattern!r}"


@dataclass
class WireSpec:
    target: str
    during: list[str]
    expectations: list[WireExpectation] = field(default_factory=list)
    filter: str | None = None


def addresses_of(topology: Topology, host: str) -> set[str]:
    return {str(topology.hosts[host].address_on(network)) for network in topology.hosts[host].networks}


def wire_problems(topology: Topology, spec: WireSpec, packets: list[Packet]) -> list[str]:
    problems = []
    where = f"{len(packets)} packets on {capture_label(topology, spec.target)}"
    for expectation in spec.expectations:
        sources = addresses_of(topology, expectation.source) if expectation.source else None
        if expectation.kind == "handshake":
            targets = addresses_of(topology, expectation.target)
            syns = [p for p in packets if p.syn and p.source in sources and p.destination in targets
                    and p.destination_port == expectation.port]
            answered = [p for p in syns if any(q.syn_ack and q.source == p.destination
                                               and q.destination == p.source
                                               and q.source_port == p.destination_port
                                               and q.destination_port == p.source_port for q in packets)]
            if not answered:
                seen = "a SYN but no SYN-ACK" if syns else "none"
                problems.append(f"expected {expectation.describe()}: saw {seen} among {where}")
        elif expectation.kind == "client_hello":
            names = [name for p in packets if p.protocol == "tcp"
                     and (sources is None or p.source in sources)
                     and (name := client_hello_server_name(p.payload)) is not None]
            if expectation.server_name not in names:
                seen = (f"ClientHellos naming {', '.join(sorted(set(n or '(none)' for n in names)))}"
                        if names else "no ClientHello")
                problems.append(f"expected {expectation.describe()}: saw {seen} among {where}")
        else:
            pattern = re.compile(expectation.pattern.encode())
            leaks = [p for p in packets if p.payload and pattern.search(p.payload)]
            if leaks:
                problems.append(f"plaintext matching {expectation.pattern!r} crossed the wire in "
                                f"{len(leaks)} of {where}, first {leaks[0]}")
    return problems


def parse_wire(body: dict[str, Any], path, source, host: Callable, endpoint: Callable) -> WireSpec:
    """`wire: {at: TARGET, during: [check names], filter: EXPR, expect: [...]}`; `host`
    and `endpoint` are the check parser's readers, so names are checked one way."""
    spec = source.mapping(body, path, ["at", "during", "filter", "expect"], required=["at", "expect"])
    during = spec.get("during", [])
    during = [during] if isinstance(during, str) else source.sequence(during, path + ("during",))
    wire = WireSpec(source.text(spec["at"], path + ("at",)),
                    [source.text(name, path + ("during", index)) for index, name in enumerate(during)],
                    filter=source.text(spec["filter"], path + ("filter",)) if "filter" in spec else None)
    for index, item in enumerate(source.sequence(spec["expect"], path + ("expect",))):
        item_path = path + ("expect", index)
        if not isinstance(item, dict) or len(item) != 1:
            raise source.error(item_path, "expected one of handshake, client_hello, no_plaintext")
        kind, value = next(iter(item.items()))
        if kind == "handshake":
            if isinstance(value, str):
                match = re.fullmatch(r"\s*(\S+)\s*->\s*(\S+)\s*", value)
                if not match:
                    raise source.error(item_path + (kind,), "expected 'HOST -> HOST:PORT'")
                value = {"from": match.group(1), "to": match.group(2)}
            fields = source.mapping(value, item_path + (kind,), ["from", "to"], required=["from", "to"])
            target, port = endpoint(fields["to"], item_path + (kind, "to"))
            wire.expectations.append(WireExpectation(kind, host(fields["from"], item_path + (kind, "from")),
                                                     target, port))
        elif kind == "client_hello":
            if isinstance(value, str):
                value = {"server_name": value}
            fields = source.mapping(value, item_path + (kind,), ["server_name", "from"], required=["server_name"])
            wire.expectations.append(WireExpectation(
                kind, host(fields["from"], item_path + (kind, "from")) if "from" in fields else None,
                server_name=source.text(fields["server_name"], item_path + (kind, "server_name"))))
        elif kind == "no_plaintext":
            text = value.get("regex") if isinstance(value, dict) else None
            pattern = text if text is not None else re.escape(source.text(value, item_path + (kind,)))
            try:
                re.compile(pattern)
            except re.error as exc:
                raise source.error(item_path + (kind,), f"bad regular expression: {exc}") from None
            wire.expectations.append(WireExpectation(kind, pattern=pattern))
        else:
            raise source.error(item_path + (str(kind),),
                               f"unknown wire expectation '{kind}'; expected handshake, client_hello or no_plaintext")
    if not wire.expectations:
        raise source.error(path + ("expect",), "expected at least one wire expectation")
    return wire
