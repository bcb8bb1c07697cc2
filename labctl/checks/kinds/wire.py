"""wire: what crossed a network while other checks ran, read from a capture: a TCP
handshake from A to B:port, a TLS ClientHello naming a server, and no plaintext matching
a pattern.

    - name: tls is encrypted on the wire
      wire: {at: dmz, during: [tls echo], expect: [{no_plaintext: secret}]}
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from ...errors import LabError
from ...model.targets import capture_label, capture_points
from ...model.topology import Topology
from ...model.yamlsource import quote
from ..expectation import regex_problem
from ..kind import CheckKind
from ..pcap import Packet, client_hello_server_name

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
    checks: list[Any] = field(default_factory=list)   # the CheckSpecs `during` names, once linked


def addresses_of(topology: Topology, host: str) -> set[str]:
    """Every address of `host`, IPv4 and IPv6 alike: an exchange over either family is the
    host's. Text as pcap writes it (IPv6 compressed), so the two compare."""
    return {str(address) for attachment in topology.hosts[host].attachments for address in attachment.addresses}


def wire_problems(topology: Topology, spec: WireSpec, packets: list[Packet]) -> list[str]:
    problems = []
    where = f"{len(packets)} packets on {capture_label(topology, spec.target)}"
    for expectation in spec.expectations:
        sources = addresses_of(topology, expectation.source) if expectation.source else None
        if expectation.kind == "handshake":
            assert sources is not None and expectation.target is not None   # a handshake names both ends
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
            assert expectation.pattern is not None   # no_plaintext: the one kind left, and its pattern
            pattern = re.compile(expectation.pattern.encode())
            leaks = [p for p in packets if p.payload and pattern.search(p.payload)]
            if leaks:
                problems.append(f"plaintext matching {expectation.pattern!r} crossed the wire in "
                                f"{len(leaks)} of {where}, first {leaks[0]}")
    return problems


def parse_filter(source, raw: Any, path) -> str:
    """A capture filter is a BPF expression (tcp port 443, host 10.1.2.3), handed to
    tcpdump after its options: no word of it may read as an option."""
    text = source.text(raw, path, hint="(a capture filter such as 'tcp port 443')", single_line=True)
    for word in text.split():
        if word.startswith("-") and word != "-":
            raise source.error(path, f"a capture filter is a BPF expression such as 'tcp port 443', "
                               f"not tcpdump options; {quote(word)} starts with '-'")
    return text


WIRE_KEYS = {
    "at": "where to capture: a network, a host, or host:network",
    "during": "the checks (by name) that run while the capture listens",
    "filter": "a BPF expression that narrows the capture, such as 'tcp port 443'",
    "expect": "what the capture must show: a list of {handshake: 'A -> B:PORT'}, {client_hello: NAME} "
              "and {no_plaintext: TEXT or {regex: ...}}",
}


def parse_wire(body: dict[str, Any], path, source, host, endpoint) -> WireSpec:
    """`wire: {at: TARGET, during: [check names], filter: EXPR, expect: [...]}`; `host`
    and `endpoint` are the check parser's readers, so names are checked one way."""
    spec = source.mapping(body, path, WIRE_KEYS, required=["at", "expect"])
    during = spec.get("during", [])
    during = [during] if isinstance(during, str) else source.sequence(during, path + ("during",))
    wire = WireSpec(source.text(spec["at"], path + ("at",), hint="(a network, host or host:network)",
                                single_line=True),
                    [source.name(name, path + ("during", index), hint="(a check name)")
                     for index, name in enumerate(during)],
                    filter=parse_filter(source, spec["filter"], path + ("filter",)) if "filter" in spec else None)
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
            # Text to look for as it is, or {regex: PATTERN}; matched against packet bytes.
            if isinstance(value, dict):
                fields = source.mapping(value, item_path + (kind,), ["regex"], required=["regex"])
                pattern = source.text(fields["regex"], item_path + (kind, "regex"),
                                      hint="(a regular expression)", allow_nul=True)
                where = item_path + (kind, "regex")
            else:
                pattern = re.escape(source.text(value, item_path + (kind,), hint="(text, or {regex: PATTERN})",
                                                allow_nul=True))
                where = item_path + (kind,)
            if problem := regex_problem(pattern, binary=True):
                raise source.error(where, problem)
            wire.expectations.append(WireExpectation(kind, pattern=pattern))
        else:
            raise source.error(item_path + (str(kind),),
                               f"unknown wire expectation {quote(kind)}; expected handshake, client_hello or no_plaintext")
    if not wire.expectations:
        raise source.error(path + ("expect",), "expected at least one wire expectation")
    return wire


class WireKind(CheckKind):
    name = "wire"
    order = 60
    summary = "what crossed a network while other checks ran, read from a capture"
    keys = WIRE_KEYS
    check_keys = ("name", "hint", "points")
    required = ("name",)
    runner = "capture"

    def parse(self, parser, raw, path, check) -> None:
        wire = parse_wire(raw, path, parser.source, parser.host, parser.endpoint)
        problem = parser.memo(("capture target", wire.target), lambda: _target_problem(parser.topology, wire.target))
        if problem:
            raise parser.source.error(path + ("at",), problem)
        check.target = wire.target
        check.options = wire

    def capture_problems(self, topology: Topology, check, packets: list[Packet]) -> list[str]:
        return wire_problems(topology, check.options, packets)

    def link(self, parser, check, known, path) -> None:
        """`during` names exchange checks of the lab; they run while the capture listens."""
        wire: WireSpec = check.options
        exchanges = parser.memo(("exchanges", id(known), len(known)), lambda: {
            other.name: other for other in known if other.kind.runner != "capture"})
        wire.checks = []
        for position, name in enumerate(wire.during):
            if name not in exchanges:
                raise parser.source.error(path + ("wire", "during", position),
                                          f"no exchange check named {quote(name)} to run during the capture")
            wire.checks.append(exchanges[name])


def _target_problem(topology: Topology, target: str) -> str | None:
    try:
        capture_points(topology, target)
    except LabError as exc:
        return str(exc)
    return None


KIND = WireKind()
