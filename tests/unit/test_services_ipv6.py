"""IPv6 in the programs that run inside lab hosts (services/): how addresses are written in
what they report, which family a socket takes, the IPv6 interfaces a host has, the request
that joins an IPv6 group, and the lab's DNS answering AAAA and ip6.arpa PTR."""

from __future__ import annotations

import errno
import importlib.util
import ipaddress
import random
import socket
import struct
import sys
import types
from pathlib import Path

import pytest

from ..conftest import REPO

SERVICES = REPO / "services"


def load(name: str):
    """A program of services/ as a module; it imports its neighbours (inet) as it does in a host."""
    sys.path.insert(0, str(SERVICES))
    try:
        spec = importlib.util.spec_from_file_location(name, SERVICES / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(SERVICES))


inet = load("inet")
dnszone = load("dnszone")


# -- addresses as reports write them ------------------------------------------------------

@pytest.mark.parametrize("seen, written", [
    ("10.10.1.2", "10.10.1.2"),
    ("::ffff:10.10.1.2", "10.10.1.2"),          # an IPv4 peer that reached an IPv6 socket
    ("::FFFF:127.0.0.1", "127.0.0.1"),
    ("fd00:10:1::2", "fd00:10:1::2"),
    ("FD00:0010:0001:0000:0000:0000:0000:0002", "fd00:10:1::2"),
    ("fe80::42:aff:fe62:2%eth0", "fe80::42:aff:fe62:2"),   # no scope
    ("::1.2.3.4", "::102:304"),                 # glibc writes this one the old way
    ("fd00:0:0:1:0:0:0:1", "fd00:0:0:1::1"),     # the first of two equal runs of zeros
    ("::", "::"),
])
def test_addresses_are_written_as_ipaddress_writes_them(seen, written):
    assert inet.address_text(seen) == written


def test_any_ipv6_address_is_written_exactly_as_ipaddress_does():
    chooser = random.Random(6)
    for _ in range(2000):
        words = [chooser.choice([0, 0, 0, 1, 0xFFFF, chooser.randrange(1 << 16)]) for _ in range(8)]
        packed = struct.pack(">8H", *words)
        text = socket.inet_ntop(socket.AF_INET6, packed)
        expected = str(ipaddress.IPv6Address(packed))
        if text.startswith("::ffff:") and "." in text:
            expected = str(ipaddress.IPv6Address(packed).ipv4_mapped)
        assert inet.address_text(text) == expected, text


def test_a_socket_address_becomes_address_and_port_and_the_family_follows_the_address():
    assert inet.endpoint(("fd00:10:2::3", 7, 0, 0)) == ("fd00:10:2::3", 7)
    assert inet.endpoint(("::ffff:10.0.0.1", 53, 0, 0)) == ("10.0.0.1", 53)
    assert inet.endpoint(("10.0.0.1", 53)) == ("10.0.0.1", 53)
    assert inet.family_of("fd00:10:2::3") == socket.AF_INET6
    assert inet.family_of("ff15::1:2") == socket.AF_INET6
    assert inet.family_of("10.10.1.2") == socket.AF_INET


# -- interfaces and groups ----------------------------------------------------------------

IF_INET6 = """\
00000000000000000000000000000001 01 80 10 80       lo
fd000098000000000000000000000002 49c1 40 00 82     eth1
fe8000000000000000420afffe620002 49c1 40 20 c0     eth1
fd000010000200000000000000000003 0007 40 00 80     eth0
"""


def test_the_ipv6_interfaces_and_the_one_holding_an_address_come_from_the_address_table(tmp_path):
    table = tmp_path / "if_inet6"
    table.write_text(IF_INET6)
    assert inet.ipv6_interfaces(str(table)) == {"eth1": 0x49C1, "eth0": 7}
    assert inet.interface_holding("fd00:10:2::3", str(table)) == 7
    assert inet.interface_holding("FD00:98::2", str(table)) == 0x49C1
    assert inet.interface_holding("fd00:98::99", str(table)) is None
    assert inet.ipv6_interfaces(str(tmp_path / "missing")) == {}   # a kernel without IPv6


def test_the_ipv6_join_request_is_struct_ipv6_mreq():
    request = inet.ipv6_membership("ff15::1:2", 0x49C1)
    assert request == struct.pack("=16sI", ipaddress.IPv6Address("ff15::1:2").packed, 0x49C1)
    assert len(request) == 20


# -- the servers: both families, peers written plainly ------------------------------------

@pytest.fixture
def labsvc(monkeypatch, tmp_path):
    """The servers' parts (labsvc.py and its svc_* neighbours), the transcript kept in a list."""
    monkeypatch.setenv("LABCTL_TRANSCRIPT", str(tmp_path / "transcript.jsonl"))
    load("labsvc")   # imports its neighbours as it does in a host
    transcript, loop = sys.modules["svc_transcript"], sys.modules["svc_loop"]
    lines: list[dict] = []
    monkeypatch.setattr(transcript, "transcript", type("Kept", (), {"append": staticmethod(lines.append)})())
    return types.SimpleNamespace(record_bytes=transcript.record_bytes, each_family=loop.each_family,
                                 bound=loop.bound, kept=lines)


def test_the_transcript_writes_ipv4_peers_dotted_and_ipv6_peers_compressed(labsvc):
    labsvc.record_bytes("udp-echo", "udp", 7, ("::ffff:10.10.1.2", 4000, 0, 0), b"hi", 2)
    labsvc.record_bytes("udp-echo", "udp", 7, ("FD00:10:1:0::2", 4001, 0, 0), b"hi", 2)
    labsvc.record_bytes("raw-listener", "raw", 253, ("fe80::1%eth0", None), b"x", 0)
    labsvc.record_bytes("udp-echo", "udp", 7, ("::ffff:127.0.0.1", 4002, 0, 0), b"labctl-health", 13)
    assert [(line["peer"], line["peer_port"]) for line in labsvc.kept] == \
        [("10.10.1.2", 4000), ("fd00:10:1::2", 4001), ("fe80::1", None)]   # health is no exchange


def test_each_server_takes_both_families_and_goes_without_the_one_the_host_lacks(labsvc):
    def lacking(number):
        def make(family):
            if family == socket.AF_INET6:
                raise OSError(number, "no")
            return family
        return make
    assert labsvc.each_family(lambda family: family) == [socket.AF_INET, socket.AF_INET6]
    assert labsvc.each_family(lacking(errno.EAFNOSUPPORT)) == [socket.AF_INET]
    assert labsvc.each_family(lacking(errno.EADDRNOTAVAIL)) == [socket.AF_INET]
    with pytest.raises(OSError):     # a port in use is no missing family
        labsvc.each_family(lacking(errno.EADDRINUSE))
    with pytest.raises(OSError):
        labsvc.each_family(lambda family: (_ for _ in ()).throw(OSError(errno.EAFNOSUPPORT, "no")))


def test_an_ipv6_server_socket_takes_ipv6_only(labsvc):
    try:
        sock = labsvc.bound(socket.AF_INET6, socket.SOCK_DGRAM, 0)
    except OSError:
        pytest.skip("no IPv6 here")
    with sock:
        assert sock.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY) == 1
        assert sock.getsockname()[0] == "::"


# -- the lab's DNS ------------------------------------------------------------------------

def zone():
    return dnszone.Zone("campus.lab", {"web": ["10.8.2.80", "FD00:8:2:0::80"], "v4": ["10.8.2.4"],
                                       "v6": ["fd00:8:2::6"]},
                        [{"name": "www", "type": "CNAME", "value": "web"}], "ns")


def ask(name: str, qtype: str) -> tuple[str, list[str]]:
    response, facts = zone().answer(dnszone.query(name, qtype, 7))
    parsed = dnszone.parse_response(response)
    assert parsed["rcode"] == facts["rcode"]
    return parsed["rcode"], [record["value"] for record in parsed["answers"]]


def test_the_zone_answers_aaaa_with_ipv6_addresses_and_a_with_ipv4_ones():
    assert ask("web.campus.lab", "AAAA") == ("NOERROR", ["fd00:8:2::80"])   # compressed
    assert ask("web.campus.lab", "A") == ("NOERROR", ["10.8.2.80"])
    assert ask("www.campus.lab", "AAAA") == ("NOERROR", ["web.campus.lab", "fd00:8:2::80"])
    assert ask("v4.campus.lab", "AAAA") == ("NOERROR", [])                   # NODATA
    assert ask("v6.campus.lab", "A") == ("NOERROR", [])
    assert ask("v6.campus.lab", "AAAA") == ("NOERROR", ["fd00:8:2::6"])


def test_the_zone_answers_ptr_under_ip6_arpa_for_its_ipv6_networks():
    pointer = ipaddress.ip_address("fd00:8:2::80").reverse_pointer
    assert pointer.endswith(".ip6.arpa") and len(pointer.split(".")) == 34
    assert ask(pointer, "PTR") == ("NOERROR", ["web.campus.lab"])
    assert ask(ipaddress.ip_address("fd00:8:2::6").reverse_pointer, "PTR") == ("NOERROR", ["v6.campus.lab"])
    # An unused address of the lab's /64 is not there; one outside it is not the lab's to answer.
    assert ask(ipaddress.ip_address("fd00:8:2::1:99").reverse_pointer, "PTR")[0] == "NXDOMAIN"
    assert ask(ipaddress.ip_address("fd00:8:3::80").reverse_pointer, "PTR")[0] == "REFUSED"
    _, facts = zone().answer(dnszone.query("web.campus.lab", "AAAA", 1))
    assert facts["answers"] == ["AAAA fd00:8:2::80"]


def test_the_probe_never_sends_a_datagram_from_a_port_an_answering_server_listens_on():
    """Built-in datagram servers never answer such a port (their guard against ping-pong), so
    the probe keeps clear of them: here half of all ephemeral ports are the lab's."""
    probe = load("probe")
    low, high = map(int, Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    avoided = set(range(low, high + 1, 2))
    sockets = [probe.datagram_socket(socket.AF_INET, {"avoid_ports": sorted(avoided)}) for _ in range(40)]
    try:
        assert not {sock.getsockname()[1] for sock in sockets} & avoided
    finally:
        for sock in sockets:
            sock.close()
