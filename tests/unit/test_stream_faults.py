"""Stream faults as the network sidecar applies them (services/shaper.py), on packets built
here: a TCP segment cut into pieces with their own sequence numbers and checksums, in both
families, and a connection reset at both ends once its limit or its time is up."""

from __future__ import annotations

import ipaddress
import struct
import types

import pytest

from labctl.model.impairment import read_impairment

from .test_services_ipv6 import load

shaper = load("shaper")


def segment(src: str, dst: str, payload: bytes, flags: int = 0x18, seq: int = 1000, ack: int = 77) -> bytes:
    source, destination = ipaddress.ip_address(src).packed, ipaddress.ip_address(dst).packed
    tcp = struct.pack("!HHIIBBHHH", 40000, 7, seq, ack, 5 << 4, flags, 64000, 0, 0)
    if len(source) == 4:
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 0, 0x1234, 0x4000, 64, 6, 0, source, destination)
    else:
        ip = struct.pack("!IHBB16s16s", 6 << 28, 0, 6, 64, source, destination)
    return shaper.tcp_packet(ip, tcp, source, destination, payload)


def valid(packet: bytes) -> bool:
    """Both checksums hold, as the receiving kernel computes them."""
    tcp = shaper.parse_tcp(packet)
    segment_bytes = packet[tcp["ihl"]:]
    if len(tcp["src"]) == 4:
        pseudo = tcp["src"] + tcp["dst"] + struct.pack("!BBH", 0, 6, len(segment_bytes))
        return shaper._sum16(packet[:20]) == 0xFFFF and shaper._sum16(pseudo + segment_bytes) == 0xFFFF
    pseudo = tcp["src"] + tcp["dst"] + struct.pack("!I3xB", len(segment_bytes), 6)
    return shaper._sum16(pseudo + segment_bytes) == 0xFFFF


@pytest.mark.parametrize("src, dst", [("10.0.0.2", "10.0.0.3"), ("fd00:1::2", "fd00:2::3")])
def test_a_segment_is_cut_into_pieces_that_add_up_to_it(src, dst):
    packet = segment(src, dst, b"hello world\n", flags=0x18 | 0x01)   # PSH, ACK, FIN
    faults = shaper.StreamFaults({"slice": 3, "slice_delay": 0.02})
    pieces = faults.apply(packet, now=0.0)
    assert [delay for delay, _ in pieces] == pytest.approx([0.0, 0.02, 0.04, 0.06])
    parsed = [shaper.parse_tcp(piece) for _, piece in pieces]
    assert b"".join(p["payload"] for p in parsed) == b"hello world\n"
    assert [p["seq"] for p in parsed] == [1000, 1003, 1006, 1009]
    assert [p["flags"] & 0x09 for p in parsed] == [0, 0, 0, 0x09]   # FIN and PSH on the last only
    assert all(valid(piece) for _, piece in pieces)
    assert faults.apply(segment(src, dst, b"ok\n"), now=0.1) is None   # small enough: untouched


@pytest.mark.parametrize("src, dst", [("10.0.0.2", "10.0.0.3"), ("fd00:1::2", "fd00:2::3")])
def test_a_connection_is_reset_at_both_ends_past_its_limit(src, dst):
    faults = shaper.StreamFaults({"limit": 10})
    assert faults.apply(segment(src, dst, b"12345678"), now=0.0) is None
    ends = faults.apply(segment(src, dst, b"9abc", seq=1008, ack=99), now=0.1)
    to_peer, to_self = (shaper.parse_tcp(packet) for _, packet in ends)
    assert to_peer["flags"] == to_self["flags"] == shaper.RST
    assert (to_peer["dst"], to_peer["seq"]) == (ipaddress.ip_address(dst).packed, 1008)
    assert (to_self["dst"], to_self["dport"], to_self["seq"]) == (ipaddress.ip_address(src).packed, 40000, 99)
    assert all(valid(packet) for _, packet in ends)


def test_a_connection_is_reset_once_its_time_is_up():
    faults = shaper.StreamFaults({"reset": 2.0})
    assert faults.apply(segment("10.0.0.2", "10.0.0.3", b"a"), now=10.0) is None
    assert faults.apply(segment("10.0.0.2", "10.0.0.3", b"b"), now=11.9) is None
    assert len(faults.apply(segment("10.0.0.2", "10.0.0.3", b"c"), now=12.0)) == 2


def test_the_lab_file_says_stream_faults_nested_or_flat():
    def fail(key, message):
        return ValueError(f"{key}: {message}")
    nested = read_impairment({"slice": {"bytes": 4, "delay": "20ms"}, "limit": {"bytes": 1000},
                              "reset": {"after": "2s"}}, fail)
    assert (nested.slice, nested.slice_delay, nested.limit, nested.reset) == (4, 0.02, 1000, 2.0)
    assert read_impairment({"slice": 4}, fail).slice == 4
    assert nested.describe() == "slice 4B slice_delay 20ms limit 1000B reset 2000ms"
    with pytest.raises(ValueError, match="slice takes bytes and delay, not 'size'"):
        read_impairment({"slice": {"size": 4}}, fail)
    with pytest.raises(ValueError, match="limit: expected a size such as 4"):
        read_impairment({"limit": {"bytes": 0}}, fail)


# -- the slice budget ------------------------------------------------------------------------

def test_slicing_holds_at_most_its_budget_and_drops_what_does_not_fit():
    faults = shaper.StreamFaults({"slice": 1, "slice_delay": 0.01})
    payload = b"s" * 1448                            # a full segment: 1448 pieces of 1 byte
    given = [faults.apply(segment("10.0.0.2", "10.0.0.3", payload, seq=1000 + i * 1448), now=0.0)
             for i in range(2000)]                   # 2.9 MB, none sent yet
    kept = [pieces for pieces in given if pieces]
    assert len(kept) == shaper.SLICE_BUDGET_PACKETS // 1448 and all(len(p) == 1448 for p in kept)
    assert given.count([]) == faults.dropped == 2000 - len(kept)
    assert faults.held_packets == sum(len(p) for p in kept) <= shaper.SLICE_BUDGET_PACKETS
    assert faults.held_bytes == sum(len(piece) for p in kept for _, piece in p) <= shaper.SLICE_BUDGET_BYTES
    # As pieces leave, room comes back; with nothing held any segment goes, even one
    # larger than the whole budget.
    for pieces in kept:
        for _, piece in pieces:
            faults.sent(piece)
    assert (faults.held_packets, faults.held_bytes) == (0, 0)
    huge = shaper.StreamFaults({"slice": 1})
    assert len(huge.apply(segment("10.0.0.2", "10.0.0.3", b"h" * 9000), now=0.0)) == 9000
    assert huge.apply(segment("10.0.0.2", "10.0.0.3", b"h" * 2), now=0.0) == []
    # Small segments, resets and what is not sliced are never held back.
    assert huge.apply(segment("10.0.0.2", "10.0.0.3", b"h"), now=0.0) is None


def test_a_dropped_segment_does_not_count_toward_the_limit():
    faults = shaper.StreamFaults({"slice": 1, "limit": 3000})
    assert len(faults.apply(segment("10.0.0.2", "10.0.0.3", b"a" * 1448), now=0.0)) == 1448
    for _ in range(50):   # over the budget: dropped, and retransmitted later
        assert faults.apply(segment("10.0.0.2", "10.0.0.3", b"b" * 1448 * 5), now=0.0) == []
    assert faults.flows and next(iter(faults.flows.values()))[1] == 1448


def test_the_delayer_sends_the_pieces_and_frees_their_room(monkeypatch):
    """The delayer with its netlink and raw sockets replaced: what it holds for a fast
    sender stays within the budget, and every piece it sends frees its room."""
    clock = [100.0]
    monkeypatch.setattr(shaper, "time", types.SimpleNamespace(monotonic=lambda: clock[0]))
    delayer = object.__new__(shaper.Delayer)
    delayer.queues = {4300: {"slice": 1, "slice_delay": 0.001}}
    delayer.streams = {4300: shaper.StreamFaults(delayer.queues[4300])}
    delayer.held, delayer.sends, delayer.sent = [], [], 0
    verdicts: list[bool] = []
    sent: list[bytes] = []
    delayer.verdict = lambda queue, packet_id, payload, accept=True: verdicts.append(accept)
    delayer.send_raw = sent.append
    for index in range(2000):
        delayer.admit(4300, index, segment("10.0.0.2", "10.0.0.3", b"x" * 1448, seq=index * 1448))
    assert verdicts == [False] * 2000                 # each segment replaced by pieces, or dropped
    assert len(delayer.sends) <= shaper.SLICE_BUDGET_PACKETS
    clock[0] += 3600
    assert delayer.release_due() is None and not delayer.sends
    stream = delayer.streams[4300]
    assert len(sent) == 2000 * 1448 - stream.dropped * 1448 and (stream.held_packets, stream.held_bytes) == (0, 0)
    delayer.admit(4300, 9999, segment("10.0.0.2", "10.0.0.3", b"y" * 1448))
    assert len(delayer.sends) == 1448
