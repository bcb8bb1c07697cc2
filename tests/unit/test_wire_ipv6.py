"""Wire checks and captures over IPv6: the pcap reader's IPv6 (extension headers,
fragments, truncation, the link types tcpdump writes) and the wire expectations judged on
IPv6 packets of a dual-stack lab."""

from __future__ import annotations

import random
import ssl
import struct
from ipaddress import ip_address

import pytest

from labctl.checks.pcap import Packet, client_hello_server_name, merge_pcaps, read_pcap
from labctl.engines.factory import read_lab

LAB = """
name: t6
networks:
  lan: {subnet: 10.1.1.0/24, subnet6: "fd00:1::/64"}
  dmz: {subnet6: "fd00:2::/64"}
hosts:
  gw: {networks: {lan: [10.1.1.254, "fd00:1::fe"], dmz: "fd00:2::fe"}, router: true}
  web:
    networks: {dmz: "fd00:2::10"}
    services: [{tls-echo: {port: 8443}}]
  alice: {networks: {lan: [10.1.1.2, "fd00:1::2"]}}
  bob: {networks: {lan: [10.1.1.3, "fd00:1::3"]}}
checks:
  - {name: tls, from: alice, to: web:8443, tls: {send: hi, expect: hi}}
  - name: wire
    wire:
      at: dmz
      during: [tls]
      expect: [{handshake: alice -> web:8443}, {client_hello: {server_name: web, from: alice}},
               {no_plaintext: secret}]
"""

ALICE, BOB, WEB = "fd00:1::2", "fd00:1::3", "fd00:2::10"
SYN, SYN_ACK, ACK, PSH_ACK = 0x02, 0x12, 0x10, 0x18


def ipv6(source: str, destination: str, next_header: int, payload: bytes, length: int | None = None) -> bytes:
    return struct.pack("!IHBB16s16s", 6 << 28, len(payload) if length is None else length, next_header, 64,
                       ip_address(source).packed, ip_address(destination).packed) + payload


def tcp(source_port: int, destination_port: int, flags: int, payload: bytes = b"") -> bytes:
    return struct.pack("!HHIIBBHHH", source_port, destination_port, 1, 0, 5 << 4, flags, 65535, 0, 0) + payload


def udp(source_port: int, destination_port: int, payload: bytes) -> bytes:
    return struct.pack("!HHHH", source_port, destination_port, 8 + len(payload), 0) + payload


def extension(next_header: int, size: int = 8) -> bytes:
    """A hop-by-hop, routing or destination options header of `size` bytes (PadN inside)."""
    return bytes([next_header, size // 8 - 1, 1, size - 4]) + b"\x00" * (size - 4)


def fragment(next_header: int, offset: int, more: bool) -> bytes:
    return struct.pack("!BBHI", next_header, 0, offset << 3 | more, 0x1234)


def ether(ip: bytes, ethertype: int = 0x86DD) -> bytes:
    return b"\x02" * 6 + b"\x04" * 6 + struct.pack("!H", ethertype) + ip


def pcap(*frames: bytes, link: int = 1) -> bytes:
    data = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, link)
    for index, frame in enumerate(frames):
        data += struct.pack("<IIII", 100 + index, 0, len(frame), len(frame)) + frame
    return data


def client_hello(server_name: str) -> bytes:
    context = ssl.create_default_context()
    client = context.wrap_bio(ssl.MemoryBIO(), outgoing := ssl.MemoryBIO(), server_hostname=server_name)
    with pytest.raises(ssl.SSLWantReadError):
        client.do_handshake()
    return outgoing.read()


def handshake(source: str = ALICE, destination: str = WEB, port: int = 8443, answered: bool = True) -> list[bytes]:
    """SYN, SYN-ACK, ACK and a ClientHello, as frames on an Ethernet capture."""
    frames = [ether(ipv6(source, destination, 6, tcp(40000, port, SYN)))]
    if answered:
        frames.append(ether(ipv6(destination, source, 6, tcp(port, 40000, SYN_ACK))))
    frames += [ether(ipv6(source, destination, 6, tcp(40000, port, ACK))),
               ether(ipv6(source, destination, 6, tcp(40000, port, PSH_ACK, client_hello("web"))))]
    return frames


def judged(write_lab, packets: list[Packet]) -> list[str]:
    lab = read_lab(write_lab(LAB))
    [check] = [check for check in lab.checks if check.kind.name == "wire"]
    return check.kind.capture_problems(lab.topology, check, packets)


def test_ipv6_tcp_reads_with_addresses_as_the_model_writes_them():
    [syn, syn_ack, ack, hello] = list(read_pcap(pcap(*handshake())))
    assert (syn.source, syn.destination, syn.source_port, syn.destination_port) == (ALICE, WEB, 40000, 8443)
    assert syn.syn and not syn_ack.syn and syn_ack.syn_ack and not ack.syn and syn.time == 100.0
    assert client_hello_server_name(hello.payload) == "web"
    full = ipv6("FD00:0002:0000:0000:0000:0000:0000:0010", ALICE, 6, tcp(1, 2, SYN))
    assert next(read_pcap(pcap(ether(full)))).source == WEB   # compressed, lowercase


def test_extension_headers_are_skipped_to_the_transport():
    chained = extension(43, 16) + extension(60) + extension(6) + tcp(40000, 8443, PSH_ACK, b"hello")
    [packet] = read_pcap(pcap(ether(ipv6(ALICE, WEB, 0, chained))))
    assert (packet.protocol, packet.destination_port, packet.payload) == ("tcp", 8443, b"hello")


def test_a_first_fragment_carries_its_transport_and_a_later_one_its_bytes():
    first = fragment(17, 0, True) + udp(5000, 7, b"head")
    later = fragment(17, 3, False) + b"the secret tail"
    packets = list(read_pcap(pcap(ether(ipv6(BOB, WEB, 44, first)), ether(ipv6(BOB, WEB, 44, later)))))
    assert [(p.protocol, p.source_port, p.payload) for p in packets] == [
        ("udp", 5000, b"head"), ("ip", 0, b"the secret tail")]


def test_udp_over_ipv6_stops_at_the_payload_length_not_the_ethernet_padding():
    frame = ether(ipv6(BOB, WEB, 17, udp(5353, 53, b"q"))) + b"\x00" * 20
    [packet] = read_pcap(pcap(frame))
    assert (packet.protocol, packet.source, packet.source_port, packet.destination_port, packet.payload) == (
        "udp", BOB, 5353, 53, b"q")


def test_neighbour_discovery_is_left_out_as_arp_is_but_pings_are_not():
    solicitation = ipv6(ALICE, "ff02::1:ff00:10", 58, bytes([135, 0, 0, 0, 0, 0, 0, 0]) + ip_address(WEB).packed)
    echo = ipv6(ALICE, WEB, 58, bytes([128, 0, 0, 0, 0, 1, 0, 1]) + b"ping")
    arp = ether(b"\x00\x01\x08\x00\x06\x04\x00\x01" + b"\x00" * 20, ethertype=0x0806)
    [packet] = read_pcap(pcap(ether(solicitation), arp, ether(echo)))
    assert (packet.protocol, packet.destination) == ("icmp", WEB)


@pytest.mark.parametrize("link, prefix", [
    (113, b"\x00\x00\x00\x01\x00\x06" + b"\x02" * 8 + b"\x86\xdd"),            # Linux cooked (tcpdump -i any)
    (276, b"\x86\xdd\x00\x00" + b"\x00\x00\x00\x02\x00\x01\x00\x06" + b"\x02" * 8),   # its second version
    (101, b""),                                                                # raw IP
    (229, b""),                                                                # raw IPv6
])
def test_ipv6_reads_on_every_link_type_tcpdump_writes(link, prefix):
    [packet] = read_pcap(pcap(prefix + ipv6(ALICE, WEB, 6, tcp(40000, 8443, SYN)), link=link))
    assert (packet.source, packet.destination, packet.syn) == (ALICE, WEB, True)


def test_truncated_or_malformed_ipv6_is_skipped_and_what_follows_still_reads():
    good = ipv6(ALICE, WEB, 17, udp(1, 2, b"ok"))
    bad = [
        good[:39],                                                   # the fixed header cut short
        ipv6(ALICE, WEB, 0, extension(6, 16)[:10]),                  # a hop-by-hop header cut short
        ipv6(ALICE, WEB, 0, b"\x06"),                                # one byte of a header
        ipv6(ALICE, WEB, 44, fragment(6, 0, True)[:5]),              # a fragment header cut short
        ipv6(ALICE, WEB, 60, extension(60) * 40 + tcp(1, 2, SYN)),   # a chain longer than any real one
        ipv6(ALICE, WEB, 0, b"", length=4000),                       # a length past the frame's end
        b"\x60", b"",
    ]
    packets = list(read_pcap(pcap(*(ether(ip) for ip in bad), ether(good))))
    assert [(p.source, p.payload) for p in packets] == [(ALICE, b"ok")]
    # Truncated after its headers, a segment still counts, as an IPv4 one does.
    [cut] = read_pcap(pcap(ether(ipv6(ALICE, WEB, 6, tcp(1, 2, PSH_ACK, b"secret"))[:-3])))
    assert cut.payload == b"sec"


def test_no_ipv6_bytes_crash_the_reader():
    chances = random.Random(6)
    samples = handshake() + [ether(ipv6(ALICE, WEB, 0, extension(44) + fragment(17, 0, True) + udp(1, 2, b"x"))),
                             ether(ipv6(ALICE, WEB, 44, fragment(6, 9, False) + b"tail"))]
    for _ in range(3000):
        sample = chances.choice(samples)
        frame = bytearray(sample[:chances.randrange(14, len(sample) + 1)])
        for _ in range(chances.randrange(4) if len(frame) > 14 else 0):
            frame[chances.randrange(14, len(frame))] = chances.randrange(256)
        for link in (1, 101, 113):
            data = frame if link == 1 else frame[14:] if link == 101 else b"\x00" * 14 + frame[12:]
            list(read_pcap(pcap(bytes(data), link=link)))   # may find packets; must not raise


def test_merged_ipv6_captures_keep_a_frame_seen_twice_once():
    frames = handshake()
    merged = merge_pcaps([pcap(*frames), pcap(*frames)])
    assert [p.flags for p in read_pcap(merged)] == [SYN, SYN_ACK, ACK, PSH_ACK]


def test_an_exchange_over_ipv6_only_passes_every_expectation(write_lab):
    """alice has an IPv4 address too, but her exchange with web (IPv6 only) went over IPv6:
    ignoring IPv6, in the reader or in alice's addresses, sees no handshake and no hello."""
    assert judged(write_lab, list(read_pcap(pcap(*handshake())))) == []


def test_an_ipv6_exchange_of_another_host_is_not_alices(write_lab):
    problems = judged(write_lab, list(read_pcap(pcap(*handshake(source=BOB)))))
    assert problems == [
        "expected a TCP handshake from alice to web:8443: saw none among 4 packets on network dmz",
        "expected a TLS ClientHello naming web from alice: saw no ClientHello among 4 packets on network dmz"]


def test_an_unanswered_ipv6_syn_is_no_handshake(write_lab):
    [problem] = judged(write_lab, list(read_pcap(pcap(*handshake(answered=False)))))
    assert problem.startswith("expected a TCP handshake from alice to web:8443: saw a SYN but no SYN-ACK")


def test_plaintext_only_in_an_ipv6_packet_is_caught(write_lab):
    leak = ether(ipv6(BOB, WEB, 0, extension(17) + udp(5000, 7, b"the secret")))
    [problem] = judged(write_lab, list(read_pcap(pcap(*handshake(), leak))))
    assert problem == ("plaintext matching 'secret' crossed the wire in 1 of 5 packets on network dmz, "
                       f"first {BOB}:5000 → {WEB}:7 udp")
