#!/usr/bin/env python3
"""Bend one host's network from inside its namespace: impairments and partitions.

Usage: shaper.py SPEC_JSON     (built by labctl/model/shaping.py)

Runs as the host's sidecar (`lc-net-<host>`), the only container with NET_ADMIN in that
namespace; the host itself stays unprivileged. On start it clears whatever an earlier
sidecar left, applies the spec, writes /tmp/lc-applied (its readiness, which `up` looks
for once), prints one JSON line saying what it did, and then either serves the userspace
delayer or waits. SIGTERM removes everything it set.

SPEC: {"mechanism": "auto" | "netem" | "fallback",
       "interfaces": [{"address": A, "network": N, "delay": s, "jitter": s, "loss": f,
                       "rate": bit/s, "duplicate": f, "corrupt": f, "reorder": f}],
       "block": [addresses this host may neither reach nor hear from]}

Two mechanisms:
  netem     tc netem on the interface's egress does everything, where the kernel has it.
  fallback  for kernels without sch_netem: TBF (under HTB, for IP only) for rate, an nftables `numgen random`
            rule in the interface's egress hook for loss, and for delay, jitter, duplication, corruption and reordering
            an NFQUEUE delayer written here against the netlink protocol.
Either way an impairment acts on IPv4 and IPv6 packets *leaving* the interface, as netem
does; ARP and IPv6 neighbour discovery are spared, so neighbours keep resolving under heavy
loss, and a partition blocks the peers' addresses but never their neighbour discovery.

Standard library only.
"""

from __future__ import annotations

import heapq
import ipaddress
import json
import os
import random
import select
import signal
import socket
import struct
import subprocess
import sys
import time

TABLE = "labctl"
QUEUE_CHAIN = "LABCTL-DELAY"
READY_FILE = "/tmp/lc-applied"
# Packets the delayer itself re-sends (duplicates) carry this mark so they skip the queue.
OWN_MARK = 0x4C43
QUEUE_BASE = 4300
QUEUE_LIMIT = 20000
DELAYER_FIELDS = ("delay", "jitter", "duplicate", "corrupt", "reorder", "slice", "limit", "reset")


def run(*argv: str, check: bool = True, stdin: str | None = None) -> subprocess.CompletedProcess:
    result = subprocess.run(argv, capture_output=True, text=True, input=stdin)
    if check and result.returncode != 0:
        sys.exit(f"shaper: {' '.join(argv)}: {result.stderr.strip() or result.stdout.strip()}")
    return result


def interface_names() -> dict[str, str]:
    """address -> interface name, read from the namespace."""
    names = {}
    for line in run("ip", "-o", "addr", "show").stdout.splitlines():
        words = line.split()
        if words[2] in ("inet", "inet6"):
            names[words[3].split("/")[0]] = words[1].split("@")[0]
    return names


# -- tc ----------------------------------------------------------------------------------

def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.3f}ms"


def _pct(fraction: float) -> str:
    return f"{fraction * 100:.4f}%"


def netem_args(spec: dict) -> list[str]:
    args: list[str] = []
    if spec.get("delay") or spec.get("jitter") or spec.get("reorder"):
        args += ["delay", _ms(spec.get("delay") or 0)]
        if spec.get("jitter"):
            args.append(_ms(spec["jitter"]))
    if spec.get("loss"):
        args += ["loss", _pct(spec["loss"])]
    if spec.get("duplicate"):
        args += ["duplicate", _pct(spec["duplicate"])]
    if spec.get("corrupt"):
        args += ["corrupt", _pct(spec["corrupt"])]
    if spec.get("reorder"):
        args += ["reorder", _pct(spec["reorder"])]
    if spec.get("rate"):
        args += ["rate", f"{int(spec['rate'])}bit"]
    return args


def tbf_args(rate: float) -> list[str]:
    # A bucket of about 5 ms at full rate, never smaller than two full-size frames, so
    # the rate holds for small and large rates alike.
    burst = max(int(rate / 8 * 0.005), 3200)
    return ["tbf", "rate", f"{int(rate)}bit", "burst", str(burst), "latency", "100ms"]


# ICMPv6 router and neighbour solicitations and adverts, and redirects: IPv6's ARP.
NEIGHBOUR_DISCOVERY = (133, 134, 135, 136, 137)
ND_NAMES = "nd-router-solicit, nd-router-advert, nd-neighbor-solicit, nd-neighbor-advert, nd-redirect"


def ip_only(interface: str, qdisc: list[str]) -> None:
    """Put `qdisc` on an HTB class that only IP is filtered into, so ARP and IPv6 neighbour
    discovery keep resolving neighbours at full health under heavy loss (the fallback's
    drops and queue spare them too). Both mechanisms go through here, so the fallback's
    tests cover this structure."""
    run("tc", "qdisc", "replace", "dev", interface, "root", "handle", "1:", "htb", "default", "1")
    for band in ("1:1", "1:2"):
        run("tc", "class", "add", "dev", interface, "parent", "1:", "classid", band, "htb",
            "rate", "100gbit", "quantum", "60000")
    run("tc", "qdisc", "add", "dev", interface, "parent", "1:2", "handle", "30:", *qdisc)
    filters = ["tc", "filter", "add", "dev", interface, "parent", "1:"]
    run(*filters, "protocol", "ip", "prio", "1", "u32", "match", "u32", "0", "0", "flowid", "1:2")
    # Neighbour discovery carries no extension headers: next header 58 at byte 6, the
    # ICMPv6 type at byte 40. The lower prio is tried first.
    for kind in NEIGHBOUR_DISCOVERY:
        run(*filters, "protocol", "ipv6", "prio", "2", "u32", "match", "u8", "58", "0xff", "at", "6",
            "match", "u8", str(kind), "0xff", "at", "40", "flowid", "1:1")
    run(*filters, "protocol", "ipv6", "prio", "3", "u32", "match", "u32", "0", "0", "flowid", "1:2")


def netem_works(interface: str) -> bool:
    trial = run("tc", "qdisc", "replace", "dev", interface, "root", "netem", "delay", "0ms", check=False)
    run("tc", "qdisc", "del", "dev", interface, "root", check=False)
    return trial.returncode == 0


# -- nftables ----------------------------------------------------------------------------

def ruleset(shaped: list[tuple[str, dict, int]], interfaces: list[str], block: list[str]) -> str:
    """The nftables table for the fallback's loss and for partitions. Both drop in the
    netdev hooks, at the interface itself, as a lossy wire would: a drop in the IP hooks
    would fail the sender's send() with EPERM, which no real network does."""
    loss = {interface: spec["loss"] for interface, spec, _ in shaped if spec.get("loss")}
    spare = f"meta protocol ip6 icmpv6 type {{ {ND_NAMES} }} accept"
    lines = [f"table netdev {TABLE} {{"]
    for interface in interfaces:
        egress = [spare] if block or interface in loss else []
        egress += _blocks("daddr", block)
        if interface in loss:
            share = int(round(loss[interface] * 1_000_000))
            egress += [f"meta mark {OWN_MARK} accept",
                       "meta protocol { ip, ip6 } " + (f"numgen random mod 1000000 < {share} " if share < 1_000_000 else "")
                       + "drop"]
        for hook, rules in (("egress", egress),
                            ("ingress", [spare, *_blocks("saddr", block)] if block else [])):
            if rules:
                lines += [f"  chain {hook}_{interface.replace('-', '_')} {{",
                          f'    type filter hook {hook} device "{interface}" priority 0; policy accept;',
                          *[f"    {rule}" for rule in rules], "  }"]
    lines.append("}")
    return "\n".join(lines) + "\n"


def _blocks(field: str, block: list[str]) -> list[str]:
    """Drop rules for the blocked addresses, one per family (a set holds one family)."""
    rules = []
    for family, keyword in ((4, "ip"), (6, "ip6")):
        addresses = [a for a in block if ipaddress.ip_address(a).version == family]
        if addresses:
            rules.append(f"{keyword} {field} {{ {', '.join(addresses)} }} drop")
    return rules


def _iptables() -> str:
    for binary in ("iptables-nft", "iptables-legacy", "iptables"):
        try:
            if run(binary, "-w", "-t", "mangle", "-S", "POSTROUTING", check=False).returncode == 0:
                return binary
        except FileNotFoundError:
            continue
    sys.exit("shaper: no working iptables for the NFQUEUE rule")


def _both_families() -> list[str]:
    """iptables and the ip6tables of the same flavour: IPv6 is queued as IPv4 is."""
    binary = _iptables()
    return [binary, binary.replace("iptables", "ip6tables")]


def queue_rules(shaped: list[tuple[str, dict, int]]) -> None:
    """Send each delayed interface's egress to its queue. nftables' own `queue` statement
    is missing from some kernels that have the xtables NFQUEUE target, so use that."""
    for binary in _both_families():
        run(binary, "-w", "-t", "mangle", "-N", QUEUE_CHAIN)
        run(binary, "-w", "-t", "mangle", "-A", "POSTROUTING", "-j", QUEUE_CHAIN)
        run(binary, "-w", "-t", "mangle", "-A", QUEUE_CHAIN, "-m", "mark", "--mark", str(OWN_MARK),
            "-j", "RETURN")
        if "ip6tables" in binary:
            for kind in NEIGHBOUR_DISCOVERY:
                run(binary, "-w", "-t", "mangle", "-A", QUEUE_CHAIN, "-p", "ipv6-icmp",
                    "--icmpv6-type", str(kind), "-j", "RETURN")
        for interface, _, queue in shaped:
            if queue >= 0:
                run(binary, "-w", "-t", "mangle", "-A", QUEUE_CHAIN, "-o", interface, "-j", "NFQUEUE",
                    "--queue-num", str(queue), "--queue-bypass")


def clear_queue_rules() -> None:
    for binary in _both_families():
        run(binary, "-w", "-t", "mangle", "-D", "POSTROUTING", "-j", QUEUE_CHAIN, check=False)
        run(binary, "-w", "-t", "mangle", "-F", QUEUE_CHAIN, check=False)
        run(binary, "-w", "-t", "mangle", "-X", QUEUE_CHAIN, check=False)



# -- stream faults: TCP segments cut into pieces, connections reset ------------------------

TCP = 6
FIN, RST, PSH, ACK = 0x01, 0x04, 0x08, 0x10
MAX_FLOWS = 4096            # connections the faults keep track of at once, oldest dropped first
# What the pieces of sliced segments waiting to be sent may hold, per interface. A sender
# faster than the pieces' pace used to queue without end (2.9 MB sent held 568 MB).
SLICE_BUDGET_PACKETS = 8192
SLICE_BUDGET_BYTES = 2 << 20


def _sum16(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total


def _checksum(data: bytes) -> int:
    return ~_sum16(data) & 0xFFFF


def parse_tcp(packet: bytes) -> dict | None:
    """A TCP segment's fields, IPv4 or IPv6 (no extension headers), or None."""
    if len(packet) < 40:
        return None
    if packet[0] >> 4 == 4:
        ihl = (packet[0] & 0x0F) * 4
        if packet[9] != TCP or len(packet) < ihl + 20 or struct.unpack_from("!H", packet, 6)[0] & 0x3FFF:
            return None   # not TCP, or a fragment
        src, dst, end = packet[12:16], packet[16:20], struct.unpack_from("!H", packet, 2)[0]
    elif packet[0] >> 4 == 6:
        ihl = 40
        if packet[6] != TCP or len(packet) < 60:
            return None
        src, dst, end = packet[8:24], packet[24:40], 40 + struct.unpack_from("!H", packet, 4)[0]
    else:
        return None
    offset = (packet[ihl + 12] >> 4) * 4
    if offset < 20 or ihl + offset > min(end, len(packet)):
        return None
    sport, dport, seq, ack = struct.unpack_from("!HHII", packet, ihl)
    return {"ihl": ihl, "src": src, "dst": dst, "sport": sport, "dport": dport, "seq": seq, "ack": ack,
            "offset": offset, "flags": packet[ihl + 13], "payload": packet[ihl + offset:end]}


def tcp_packet(ip_header: bytes, tcp_header: bytes, src: bytes, dst: bytes, payload: bytes) -> bytes:
    """An IP packet around `tcp_header` (its checksum field recomputed) and `payload`, the
    IP header's length (and IPv4's checksum) set to match."""
    segment = bytearray(tcp_header + payload)
    segment[16:18] = b"\0\0"
    if len(src) == 4:
        pseudo = src + dst + struct.pack("!BBH", 0, TCP, len(segment))
        header = bytearray(ip_header)
        header[2:4] = struct.pack("!H", len(header) + len(segment))
        header[10:12] = b"\0\0"
        header[10:12] = struct.pack("!H", _checksum(bytes(header)))
    else:
        pseudo = src + dst + struct.pack("!I3xB", len(segment), TCP)
        header = bytearray(ip_header)
        header[4:6] = struct.pack("!H", len(segment))
    segment[16:18] = struct.pack("!H", _checksum(pseudo + bytes(segment)))
    return bytes(header) + bytes(segment)


def slices(packet: bytes, tcp: dict, size: int) -> list[bytes]:
    """The segment as pieces of at most `size` payload bytes, each with its own sequence
    number; FIN and PSH stay on the last."""
    ip_header, header = packet[:tcp["ihl"]], bytearray(packet[tcp["ihl"]:tcp["ihl"] + tcp["offset"]])
    payload, pieces = tcp["payload"], []
    for start in range(0, len(payload), size):
        last = start + size >= len(payload)
        header[4:8] = struct.pack("!I", (tcp["seq"] + start) & 0xFFFFFFFF)
        header[13] = tcp["flags"] if last else tcp["flags"] & ~(FIN | PSH)
        ip = bytearray(ip_header)
        if len(tcp["src"]) == 4:   # each piece its own IPv4 id
            ip[4:6] = struct.pack("!H", (struct.unpack_from("!H", ip_header, 4)[0] + start // size) & 0xFFFF)
        pieces.append(tcp_packet(bytes(ip), bytes(header), tcp["src"], tcp["dst"], payload[start:start + size]))
    return pieces


def resets(tcp: dict) -> list[bytes]:
    """RSTs that end the connection at both ends: one to the peer, as from this host (our
    next sequence number), and one to this host's own socket, as from the peer (the number
    it expects next)."""
    def rst(src: bytes, dst: bytes, sport: int, dport: int, seq: int) -> bytes:
        header = struct.pack("!HHIIBBHHH", sport, dport, seq, 0, 5 << 4, RST, 0, 0, 0)
        if len(src) == 4:
            ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 0, 0, 0x4000, 64, TCP, 0, src, dst)
        else:
            ip = struct.pack("!IHBB16s16s", 6 << 28, 0, TCP, 64, src, dst)
        return tcp_packet(ip, header, src, dst, b"")
    return [rst(tcp["src"], tcp["dst"], tcp["sport"], tcp["dport"], tcp["seq"]),
            rst(tcp["dst"], tcp["src"], tcp["dport"], tcp["sport"], tcp["ack"])]


class StreamFaults:
    """What `slice`, `limit` and `reset` do to the TCP segments leaving an interface: None
    (pass it on, to the delay), or the packets to send instead of it, with their delays
    (none: drop it). Whoever sends those packets says so with `sent`, which frees their
    room in the slice budget."""

    def __init__(self, spec: dict):
        self.size = int(spec.get("slice") or 0)
        self.gap = float(spec.get("slice_delay") or 0.0)
        self.limit = int(spec.get("limit") or 0)
        self.after = float(spec.get("reset") or 0.0)
        self.flows: dict[tuple, list[float]] = {}   # (src, dst, sport, dport) -> [first seen, bytes out]
        self.held_packets = 0   # packets given out and not sent yet
        self.held_bytes = 0
        self.dropped = 0        # segments dropped because the slice budget was full

    def __bool__(self) -> bool:
        return bool(self.size or self.limit or self.after)

    def apply(self, packet: bytes, now: float) -> list[tuple[float, bytes]] | None:
        tcp = parse_tcp(packet)
        if tcp is None or tcp["flags"] & RST:
            return None
        sliced = self.size and len(tcp["payload"]) > self.size
        if sliced and not self.room_for(tcp):
            # Over budget the segment is dropped, not passed on whole: a lab that slices
            # a stream tests that its reader copes with pieces, and a segment let through
            # whole would pass that test by luck. The sender retransmits a dropped segment
            # and its congestion control slows to the pace the pieces leave at, as behind
            # any full router queue; the stream still arrives whole, in pieces. It is not
            # counted toward `limit` here: its retransmission will be.
            self.dropped += 1
            return []
        flow = (tcp["src"], tcp["dst"], tcp["sport"], tcp["dport"])
        if self.limit or self.after:
            seen = self.flows.setdefault(flow, [now, 0.0])
            if len(self.flows) > MAX_FLOWS:
                self.flows.pop(next(iter(self.flows)))
            seen[1] += len(tcp["payload"])
            if (self.limit and seen[1] > self.limit) or (self.after and now - seen[0] >= self.after):
                self.flows.pop(flow, None)
                return self.hold([(0.0, rst) for rst in resets(tcp)])
        if sliced:
            return self.hold([(index * self.gap, piece) for index, piece in enumerate(slices(packet, tcp, self.size))])
        return None

    def room_for(self, tcp: dict) -> bool:
        """Whether the segment's pieces fit the slice budget beside those still waiting.
        With none waiting any segment fits, so one larger than the budget still goes:
        what is held stays under the budget plus one segment."""
        if not self.held_packets:
            return True
        pieces = -(-len(tcp["payload"]) // self.size)
        size = len(tcp["payload"]) + pieces * (tcp["ihl"] + tcp["offset"])
        return (self.held_packets + pieces <= SLICE_BUDGET_PACKETS
                and self.held_bytes + size <= SLICE_BUDGET_BYTES)

    def hold(self, packets: list[tuple[float, bytes]]) -> list[tuple[float, bytes]]:
        self.held_packets += len(packets)
        self.held_bytes += sum(len(packet) for _, packet in packets)
        return packets

    def sent(self, packet: bytes) -> None:
        self.held_packets -= 1
        self.held_bytes -= len(packet)


# -- the userspace delayer: NFQUEUE over netlink --------------------------------------------

NETLINK_NETFILTER = 12
NFNL_SUBSYS_QUEUE = 3
NFQNL_MSG_PACKET, NFQNL_MSG_VERDICT, NFQNL_MSG_CONFIG = 0, 1, 2
NFQA_CFG_CMD, NFQA_CFG_PARAMS, NFQA_CFG_QUEUE_MAXLEN = 1, 2, 3
NFQNL_CFG_CMD_BIND = 1
NFQNL_COPY_PACKET = 2
NFQA_PACKET_HDR, NFQA_VERDICT_HDR, NFQA_PAYLOAD = 1, 2, 10
NF_DROP, NF_ACCEPT = 0, 1
NLM_F_REQUEST, NLM_F_ACK = 1, 4
NLMSG_ERROR = 2
SO_MARK = 36
SO_RCVBUFFORCE = 33


def _attribute(kind: int, data: bytes) -> bytes:
    header = struct.pack("=HH", 4 + len(data), kind)
    return header + data + b"\0" * (-len(data) % 4)


def _attributes(data: bytes) -> dict[int, bytes]:
    found = {}
    offset = 0
    while offset + 4 <= len(data):
        length, kind = struct.unpack_from("=HH", data, offset)
        if length < 4:
            break
        found[kind & 0x3FFF] = data[offset + 4:offset + length]
        offset += (length + 3) & ~3
    return found


class Delayer:
    """Holds each queued packet for its interface's delay (plus jitter), then accepts it,
    possibly corrupted; duplicates are re-sent raw; `reorder` lets a share skip the delay."""

    def __init__(self, queues: dict[int, dict]):
        self.queues = queues
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 8 << 20)
        except OSError:
            pass
        self.sock.bind((0, 0))
        # Duplicates are re-sent whole, headers included: IPPROTO_RAW means just that, in
        # both families.
        self.raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
        self.raw.setsockopt(socket.SOL_SOCKET, SO_MARK, OWN_MARK)
        try:
            self.raw6: socket.socket | None = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_RAW)
            self.raw6.setsockopt(socket.SOL_SOCKET, SO_MARK, OWN_MARK)
        except OSError:   # IPv6 is off in this namespace: nothing of it to duplicate
            self.raw6 = None
        self.seq = 0
        self.held: list[tuple[float, int, int, bytes | None, bytes | None]] = []
        self.sends: list[tuple[float, int, int, bytes]] = []   # its own packets to send: when, order, queue
        self.sent = 0
        self.streams = {queue: StreamFaults(spec) for queue, spec in queues.items()}
        for queue in queues:
            self._config(queue, _attribute(NFQA_CFG_CMD, struct.pack("!BBH", NFQNL_CFG_CMD_BIND, 0, 0)))
            self._config(queue, _attribute(NFQA_CFG_PARAMS, struct.pack("!IB", 0xFFFF, NFQNL_COPY_PACKET)))
            self._config(queue, _attribute(NFQA_CFG_QUEUE_MAXLEN, struct.pack("!I", QUEUE_LIMIT)))

    def _send(self, kind: int, queue: int, payload: bytes, flags: int = NLM_F_REQUEST) -> None:
        self.seq += 1
        body = struct.pack("!BBH", socket.AF_UNSPEC, 0, queue) + payload
        header = struct.pack("=IHHII", 16 + len(body), (NFNL_SUBSYS_QUEUE << 8) | kind, flags, self.seq, 0)
        self.sock.send(header + body)

    def _config(self, queue: int, attribute: bytes) -> None:
        self._send(NFQNL_MSG_CONFIG, queue, attribute, NLM_F_REQUEST | NLM_F_ACK)
        reply = self.sock.recv(65536)
        length, kind = struct.unpack_from("=IH", reply)
        if kind == NLMSG_ERROR:
            code = struct.unpack_from("=i", reply, 16)[0]
            if code != 0:
                sys.exit(f"shaper: NFQUEUE config for queue {queue} failed: {os.strerror(-code)}")

    def verdict(self, queue: int, packet_id: int, payload: bytes | None, accept: bool = True) -> None:
        attributes = _attribute(NFQA_VERDICT_HDR, struct.pack("!II", NF_ACCEPT if accept else NF_DROP, packet_id))
        if payload is not None:
            attributes += _attribute(NFQA_PAYLOAD, payload)
        self._send(NFQNL_MSG_VERDICT, queue, attributes)

    def receive(self) -> None:
        try:
            data = self.sock.recv(1 << 18)
        except OSError:  # ENOBUFS: the kernel dropped messages; carry on as netem would
            return
        offset = 0
        while offset + 16 <= len(data):
            length, kind = struct.unpack_from("=IH", data, offset)
            if length < 16:
                break
            if kind == (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET:
                queue = struct.unpack_from("!H", data, offset + 18)[0]
                attributes = _attributes(data[offset + 20:offset + length])
                if NFQA_PACKET_HDR in attributes:
                    packet_id = struct.unpack_from("!I", attributes[NFQA_PACKET_HDR])[0]
                    self.admit(queue, packet_id, attributes.get(NFQA_PAYLOAD, b""))
            offset += (length + 3) & ~3

    def admit(self, queue: int, packet_id: int, packet: bytes) -> None:
        spec = self.queues.get(queue, {})
        delay = spec.get("delay") or 0.0
        stream = self.streams.get(queue)
        instead = stream.apply(packet, time.monotonic()) if stream else None
        if instead is not None:   # the segment goes as pieces, or the connection ends
            self.verdict(queue, packet_id, None, accept=False)
            now = time.monotonic()
            for after, replacement in instead:
                self.sent += 1
                heapq.heappush(self.sends, (now + delay + after, self.sent, queue, replacement))
            return
        if spec.get("jitter"):
            delay = max(0.0, delay + random.uniform(-spec["jitter"], spec["jitter"]))
        if spec.get("reorder") and random.random() < spec["reorder"]:
            delay = 0.0
        changed = None
        if spec.get("corrupt") and random.random() < spec["corrupt"] and len(packet) > 20:
            header = 40 if packet[0] >> 4 == 6 else (packet[0] & 0x0F) * 4
            if len(packet) > header:
                position = random.randrange(header, len(packet))
                mangled = bytearray(packet)
                mangled[position] ^= 1 << random.randrange(8)
                changed = bytes(mangled)
        duplicate = bool(spec.get("duplicate") and random.random() < spec["duplicate"])
        copy = (changed or packet) if duplicate else None
        heapq.heappush(self.held, (time.monotonic() + delay, packet_id, queue, changed, copy))

    def send_raw(self, packet: bytes) -> None:
        """A whole IP packet out, marked so that the queue lets it pass."""
        try:
            if packet[0] >> 4 == 6 and self.raw6 is not None:
                self.raw6.sendto(packet, (socket.inet_ntop(socket.AF_INET6, packet[24:40]), 0))
            else:
                self.raw.sendto(packet, (socket.inet_ntoa(packet[16:20]), 0))
        except OSError:
            pass

    def release_due(self) -> float | None:
        now = time.monotonic()
        while self.held and self.held[0][0] <= now:
            _, packet_id, queue, changed, copy = heapq.heappop(self.held)
            self.verdict(queue, packet_id, changed)
            if copy is not None:
                self.send_raw(copy)
        while self.sends and self.sends[0][0] <= now:
            _, _, queue, packet = heapq.heappop(self.sends)
            self.send_raw(packet)
            self.streams[queue].sent(packet)
        due = [heap[0][0] for heap in (self.held, self.sends) if heap]
        return min(due) - now if due else None

    def serve(self) -> None:
        while True:
            wait = self.release_due()
            readable, _, _ = select.select([self.sock], [], [], wait)
            if readable:
                self.receive()


# -- apply and clear -----------------------------------------------------------------------

def clear(interfaces: list[str]) -> None:
    run("nft", "delete", "table", "netdev", TABLE, check=False)
    clear_queue_rules()
    for interface in interfaces:
        run("tc", "qdisc", "del", "dev", interface, "root", check=False)


def apply(spec: dict) -> tuple[dict, dict[int, dict]]:
    names = interface_names()
    wanted = spec.get("interfaces", [])
    missing = [item["address"] for item in wanted if item["address"] not in names]
    if missing:
        sys.exit(f"shaper: no interface holds {', '.join(missing)} (is the host disconnected?)")
    # An interface holds an address in each family (and a link-local one): list it once.
    all_interfaces = sorted({name for name in names.values() if name != "lo"})
    clear(all_interfaces)
    mechanism = spec.get("mechanism", "auto")
    if mechanism == "auto":
        mechanism = "netem" if not wanted or netem_works(names[wanted[0]["address"]]) else "fallback"
    queues: dict[int, dict] = {}
    shaped: list[tuple[str, dict, int]] = []
    report = {"mechanism": mechanism, "interfaces": {}, "block": spec.get("block", [])}
    for index, item in enumerate(wanted):
        interface = names[item["address"]]
        report["interfaces"][item["network"]] = interface
        if mechanism == "netem":
            args = netem_args(item)
            if args:
                ip_only(interface, ["netem", *args])
            stream = {key: item[key] for key in ("slice", "slice_delay", "limit", "reset") if item.get(key)}
            if stream:   # netem cannot cut or reset a TCP stream: the queue does that
                queue = QUEUE_BASE + index
                queues[queue] = stream
            shaped.append((interface, stream, QUEUE_BASE + index if stream else -1))
            continue
        if item.get("rate"):
            ip_only(interface, tbf_args(item["rate"]))
        queue = -1
        if any(item.get(field) for field in DELAYER_FIELDS):
            queue = QUEUE_BASE + index
            queues[queue] = item
        shaped.append((interface, item, queue))
    block = [str(ipaddress.ip_address(address)) for address in spec.get("block", [])]
    if queues:
        queue_rules(shaped)
    rules = ruleset(shaped, all_interfaces, block)
    if "chain" in rules:
        result = run("nft", "-f", "-", stdin=rules, check=False)
        if result.returncode != 0:
            sys.exit(f"shaper: nft refused the rules: {result.stderr.strip()}")
    return report, queues


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        sys.exit(__doc__)
    spec = json.loads(argv[1])

    def stop(signum, frame):
        clear([name for name in interface_names().values() if name != "lo"])
        try:
            os.unlink(READY_FILE)
        except FileNotFoundError:
            pass
        sys.exit(0)
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    report, queues = apply(spec)
    delayer = Delayer(queues) if queues else None
    print(json.dumps(report), flush=True)
    with open(READY_FILE, "w") as ready:
        ready.write(json.dumps(report))
    if delayer:
        delayer.serve()
    while True:
        signal.pause()


if __name__ == "__main__":
    sys.exit(main(sys.argv))
