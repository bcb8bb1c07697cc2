"""The lab's DNS, for the built-in `dns` service (services/svc_dns.py) and for the probe's
`dns` checks (services/probe.py): DNS messages read and written with the standard library.

An authoritative server for one zone: A (and AAAA) for every host, PTR for their
addresses, and the records the lab declares (CNAME, TXT, MX, SRV); SOA and NS at the apex.
It never recurses: a name outside the zone (and outside the lab's reverse zones) is REFUSED.
"""

from __future__ import annotations

import ipaddress
import struct

TYPES = {"A": 1, "NS": 2, "CNAME": 5, "SOA": 6, "PTR": 12, "MX": 15, "TXT": 16, "AAAA": 28, "SRV": 33, "ANY": 255}
TYPE_NAMES = {number: name for name, number in TYPES.items()}
RCODES = {"NOERROR": 0, "FORMERR": 1, "SERVFAIL": 2, "NXDOMAIN": 3, "NOTIMP": 4, "REFUSED": 5}
RCODE_NAMES = {number: name for name, number in RCODES.items()}
TTL = 60
MAX_MESSAGE = 65535
MAX_NAME = 255      # bytes of a name as sent: its labels, a length byte each, and the root's
QR = 0x8000         # the header flag of a response


class FormatError(ValueError):
    pass


# -- names ---------------------------------------------------------------------------------

def encode_name(name: str) -> bytes:
    out = b""
    for label in name.rstrip(".").split(".") if name.strip(".") else []:
        data = label.encode("idna") if not label.isascii() else label.encode()
        if not 0 < len(data) < 64:
            raise FormatError(f"a label of 1 to 63 bytes, got {label!r}")
        out += bytes([len(data)]) + data
    return out + b"\0"


def read_name(message: bytes, offset: int) -> tuple[str, int]:
    """The name at `offset` (following compression pointers, at most 64 of them), and
    where the record continues. A name is at most MAX_NAME bytes, as DNS has it: pointers
    that loop back cannot make a longer one."""
    labels, end, jumps, size = [], None, 0, 1
    while True:
        if offset >= len(message):
            raise FormatError("a name runs past the message")
        length = message[offset]
        if length & 0xC0 == 0xC0:
            if offset + 1 >= len(message) or jumps > 64:
                raise FormatError("a bad compression pointer")
            if end is None:
                end = offset + 2
            offset = ((length & 0x3F) << 8) | message[offset + 1]
            jumps += 1
            continue
        if length & 0xC0:
            raise FormatError("a bad label")
        if length == 0:
            return ".".join(labels).lower(), (end if end is not None else offset + 1)
        size += 1 + length
        if size > MAX_NAME:
            raise FormatError(f"a name over {MAX_NAME} bytes")
        labels.append(message[offset + 1:offset + 1 + length].decode("ascii", "replace"))
        offset += 1 + length


# -- messages ------------------------------------------------------------------------------

def query(name: str, qtype: str, ident: int, recursion: bool = True) -> bytes:
    flags = 0x0100 if recursion else 0
    return struct.pack(">HHHHHH", ident, flags, 1, 0, 0, 0) + encode_name(name) + struct.pack(">HH", TYPES[qtype], 1)


def parse_question(message: bytes) -> tuple[int, int, str, int, int]:
    """(id, flags, name, type, offset after the question) of a query."""
    if len(message) < 12:
        raise FormatError("shorter than a DNS header")
    ident, flags, questions = struct.unpack(">HHH", message[:6])
    if questions != 1:
        raise FormatError("not one question")
    name, offset = read_name(message, 12)
    if offset + 4 > len(message):
        raise FormatError("a question runs past the message")
    qtype, _qclass = struct.unpack(">HH", message[offset:offset + 4])
    return ident, flags, name, qtype, offset + 4


def rdata_text(rtype: int, message: bytes, offset: int, length: int) -> str:
    data = message[offset:offset + length]
    if rtype == 1 and length == 4:
        return str(ipaddress.IPv4Address(data))
    if rtype == 28 and length == 16:
        return str(ipaddress.IPv6Address(data))
    if rtype in (2, 5, 12):
        return read_name(message, offset)[0]
    if rtype == 15:
        return f"{struct.unpack('>H', data[:2])[0]} {read_name(message, offset + 2)[0]}"
    if rtype == 33:
        priority, weight, port = struct.unpack(">HHH", data[:6])
        return f"{priority} {weight} {port} {read_name(message, offset + 6)[0]}"
    if rtype == 16:
        parts, at = [], 0
        while at < len(data):
            parts.append(data[at + 1:at + 1 + data[at]].decode("utf-8", "replace"))
            at += 1 + data[at]
        return "".join(parts)
    return data.hex()


def parse_response(message: bytes) -> dict:
    """What a client needs of an answer: rcode, flags and the answer records as text."""
    if len(message) < 12:
        raise FormatError("shorter than a DNS header")
    ident, flags, questions, answers, _ns, _extra = struct.unpack(">HHHHHH", message[:12])
    offset = 12
    for _ in range(questions):
        offset = read_name(message, offset)[1] + 4
    records = []
    for _ in range(answers):
        name, offset = read_name(message, offset)
        if offset + 10 > len(message):
            raise FormatError("a record runs past the message")
        rtype, _rclass, ttl, length = struct.unpack(">HHIH", message[offset:offset + 10])
        offset += 10
        records.append({"name": name, "type": TYPE_NAMES.get(rtype, str(rtype)), "ttl": ttl,
                        "value": rdata_text(rtype, message, offset, length)})
        offset += length
    return {"id": ident, "rcode": RCODE_NAMES.get(flags & 0x0F, str(flags & 0x0F)),
            "aa": bool(flags & 0x0400), "ra": bool(flags & 0x0080), "answers": records}


# -- the zone ------------------------------------------------------------------------------

def reverse_zone(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    """The reverse zone the lab answers for around an address: its /24 under in-addr.arpa,
    its /64 under ip6.arpa (16 nibbles, the host part, dropped from its name)."""
    return ip.reverse_pointer.split(".", 1 if ip.version == 4 else 16)[-1]


class Zone:
    """`zone`: the lab's domain; `hosts`: name -> addresses; `records`: declared records,
    each {name, type, value} with names relative to the zone ("@" is the apex)."""

    def __init__(self, zone: str, hosts: dict[str, list[str]], records: list[dict], server: str):
        self.zone = zone.strip(".").lower()
        self.records: dict[tuple[str, int], list[tuple[int, bytes, str]]] = {}
        self.reverse_zones: set[str] = set()
        self.add(self.zone, "SOA", f"{server}.{self.zone} hostmaster.{self.zone} 1 3600 600 86400 {TTL}")
        self.add(self.zone, "NS", f"{server}.{self.zone}")
        for host, addresses in hosts.items():
            for address in addresses:
                ip = ipaddress.ip_address(address)
                self.add(f"{host}.{self.zone}", "A" if ip.version == 4 else "AAAA", str(ip))
                self.add(ip.reverse_pointer, "PTR", f"{host}.{self.zone}")
                self.reverse_zones.add(reverse_zone(ip))
        for record in records:
            name = record["name"]
            fqdn = self.zone if name == "@" else f"{name.rstrip('.')}.{self.zone}".lower()
            value = record["value"]
            if record["type"] in ("CNAME", "NS", "PTR") and "." not in value:
                value = f"{value}.{self.zone}"
            elif record["type"] in ("MX", "SRV"):
                *numbers, target = value.split()
                value = " ".join([*numbers, target if "." in target else f"{target}.{self.zone}"])
            self.add(fqdn, record["type"], value)

    def add(self, name: str, rtype: str, value: str) -> None:
        self.records.setdefault((name.lower(), TYPES[rtype]), []).append((TYPES[rtype], self._rdata(rtype, value), value))

    @staticmethod
    def _rdata(rtype: str, value: str) -> bytes:
        if rtype == "A":
            return ipaddress.IPv4Address(value).packed
        if rtype == "AAAA":
            return ipaddress.IPv6Address(value).packed
        if rtype in ("CNAME", "NS", "PTR"):
            return encode_name(value)
        if rtype == "MX":
            preference, target = value.split()
            return struct.pack(">H", int(preference)) + encode_name(target)
        if rtype == "SRV":
            priority, weight, port, target = value.split()
            return struct.pack(">HHH", int(priority), int(weight), int(port)) + encode_name(target)
        if rtype == "TXT":
            data = value.encode()
            return b"".join(bytes([len(data[i:i + 255])]) + data[i:i + 255] for i in range(0, max(1, len(data)), 255))
        if rtype == "SOA":
            mname, rname, *numbers = value.split()
            return encode_name(mname) + encode_name(rname) + struct.pack(">IIIII", *map(int, numbers))
        raise ValueError(rtype)

    def ours(self, name: str) -> bool:
        return any(name == zone or name.endswith("." + zone) for zone in (self.zone, *self.reverse_zones))

    def names(self) -> set[str]:
        return {name for name, _ in self.records}

    def answer(self, message: bytes) -> tuple[bytes | None, dict]:
        """The response to a query (None: no answer at all), and what the transcript keeps
        of it. A response (QR set), or what cannot be read as a query, gets no answer: an
        answer to it could be answered in turn, by another server, without end."""
        try:
            ident, flags, name, qtype, end = parse_question(message)
        except FormatError as exc:
            return None, {"error": f"not answered: malformed query: {exc}"}
        question = message[12:end]
        facts = {"qname": name, "qtype": TYPE_NAMES.get(qtype, str(qtype))}
        if flags & QR:
            return None, {**facts, "error": "not answered: a response, not a query"}
        if flags & 0x7800:  # an opcode other than QUERY
            rcode, records = RCODES["NOTIMP"], []
        elif not self.ours(name):
            rcode, records = RCODES["REFUSED"], []   # authoritative only: never recursion
        else:
            records = self._lookup(name, qtype)
            rcode = RCODES["NOERROR"] if records or name in self.names() else RCODES["NXDOMAIN"]
        header_flags = QR | 0x0400 * (rcode != RCODES["REFUSED"]) | (flags & 0x0100) | rcode
        body = b"".join(encode_name(owner) + struct.pack(">HHIH", rtype, 1, TTL, len(rdata)) + rdata
                        for owner, rtype, rdata, _ in records)
        facts.update({"rcode": RCODE_NAMES[rcode],
                      "answers": [f"{TYPE_NAMES[rtype]} {text}" for _, rtype, _, text in records]})
        return struct.pack(">HHHHHH", ident, header_flags, 1, len(records), 0, 0) + question + body, facts

    def _lookup(self, name: str, qtype: int) -> list[tuple[str, int, bytes, str]]:
        found: list[tuple[str, int, bytes, str]] = []
        for _ in range(8):  # follow CNAMEs inside the zone, a few at most
            cname = self.records.get((name, TYPES["CNAME"]))
            if cname and qtype != TYPES["CNAME"]:
                rtype, rdata, text = cname[0]
                found.append((name, rtype, rdata, text))
                name = text.rstrip(".").lower()
                continue
            types = [t for (n, t) in self.records if n == name] if qtype == TYPES["ANY"] else [qtype]
            for rtype in types:
                found += [(name, rtype, rdata, text) for rtype, rdata, text in self.records.get((name, rtype), [])]
            break
        return found
