"""The model behind impairments, partitions, scenarios and wire checks: how declarations
and live changes combine, and one-line errors for every kind of bad input."""

from __future__ import annotations

import ssl
import struct

import pytest

from labctl.checks.pcap import client_hello_server_name, read_pcap
from labctl.engines.factory import read_lab
from labctl.errors import LabError, LabFileError
from labctl.model.impairment import Impairment, Interface
from labctl.model.shaping import (LiveState, change_impairment, clear_impairment, effective, parse_sides,
                                  sidecar_specs)
from labctl.model.yamlsource import parse_rate

LAB = """
name: t
networks:
  lan: {subnet: 10.1.1.0/24}
  dmz: {subnet: 10.1.2.0/24}
hosts:
  gw: {networks: {lan: 10.1.1.254, dmz: 10.1.2.254}, router: true}
  web:
    networks: {dmz: 10.1.2.10}
    services: [{tls-echo: {port: 8443}}]
  alice: {networks: {lan: 10.1.1.2}}
impairments:
  alice:lan: {delay: 10ms, rate: 2mbit}
  lan: {delay: 50ms, loss: 1%}
checks:
  - {name: tls, from: alice, to: web:8443, tls: {send: hi, expect: hi}}
"""


def read(write_lab, text: str = LAB):
    return read_lab(write_lab(text))


def load(write_lab, text: str = LAB):
    return read(write_lab, text).topology


def error_for(write_lab, text: str) -> str:
    with pytest.raises(LabFileError) as caught:
        load(write_lab, text)
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_an_interface_refines_its_network_whatever_the_order(write_lab):
    topology = load(write_lab)
    state = effective(topology)
    assert state[Interface("alice", "lan")] == Impairment(delay=0.010, loss=0.01, rate=2e6)
    assert state[Interface("gw", "lan")] == Impairment(delay=0.050, loss=0.01)
    assert Interface("gw", "dmz") not in state and Interface("web", "dmz") not in state


def test_a_live_change_replaces_what_it_names_and_keeps_the_rest(write_lab):
    topology = load(write_lab)
    live = LiveState()
    change_impairment(topology, live, "lan", {"loss": "5%"})
    change_impairment(topology, live, "alice", {"delay": "80ms"})
    state = effective(topology, live)
    assert state[Interface("alice", "lan")] == Impairment(delay=0.080, loss=0.05, rate=2e6)
    assert state[Interface("gw", "lan")] == Impairment(delay=0.050, loss=0.05)
    clear_impairment(topology, live, "gw:lan")
    assert Interface("gw", "lan") not in effective(topology, live)
    clear_impairment(topology, live, None)
    assert effective(topology, live) == {}


def test_live_changes_are_checked_like_the_lab_file(write_lab):
    topology = load(write_lab)
    with pytest.raises(LabError, match="--loss: expected a share such as 5%, got 'lots'"):
        change_impairment(topology, LiveState(), "lan", {"loss": "lots"})
    with pytest.raises(LabError, match="--reorder: reorder needs a delay"):
        change_impairment(topology, LiveState(), "dmz", {"reorder": "10%"})
    with pytest.raises(LabError, match="'nowhere' is neither a host nor a network"):
        change_impairment(topology, LiveState(), "nowhere", {"delay": "1ms"})
    with pytest.raises(LabError, match="host 'web' is not on network 'lan'; it is on: dmz"):
        change_impairment(topology, LiveState(), "web:lan", {"delay": "1ms"})


def test_sidecars_carry_impairments_and_partition_blocks(write_lab):
    topology = load(write_lab)
    live = LiveState(partitions=[parse_sides(topology, ["alice", "--", "web,gw"])])
    specs = sidecar_specs(topology, live)
    assert specs["alice"]["block"] == ["10.1.1.254", "10.1.2.10", "10.1.2.254"]
    assert specs["alice"]["interfaces"] == [{"address": "10.1.1.2", "network": "lan", "delay": 0.01,
                                             "loss": 0.01, "rate": 2e6}]
    assert specs["web"] == {"mechanism": "auto", "interfaces": [], "block": ["10.1.1.2"]}
    with pytest.raises(LabError, match="alice cannot be on both sides"):
        parse_sides(topology, ["alice", "--", "alice,web"])
    with pytest.raises(LabError, match="expected two sets of hosts"):
        parse_sides(topology, ["alice,web"])


@pytest.mark.parametrize("entry, expected", [
    ("  lan: {latency: 5ms}", "impairments.lan.latency: unknown key 'latency'; expected one of: delay,"),
    ("  lan: {loss: 150%}", "impairments.lan.loss: expected a share such as 5%, got '150%'"),
    ("  lan: {rate: fast}", "impairments.lan.rate: expected a rate such as 10mbit, got 'fast'"),
    ("  lan: {delay: 5ms, jitter: 10ms}", "impairments.lan.jitter: jitter larger than the delay"),
    ("  wan: {delay: 5ms}", "impairments.wan: 'wan' is neither a host nor a network"),
])
def test_bad_impairments_name_the_line_and_key(write_lab, entry, expected):
    text = LAB.replace("  alice:lan: {delay: 10ms, rate: 2mbit}\n  lan: {delay: 50ms, loss: 1%}", entry)
    message = error_for(write_lab, text)
    assert expected in message
    assert ":12: " in message  # the line of the entry


SCENARIO = LAB + """
scenarios:
  s:
    - impair: {lan: {loss: 20%}}
    - fault: {partition: alice -- web}
    - check: tls
    - heal: all
    - wait-for: {check: tls, within: 5s}
    - fault: {pause: web}
    - check: {name: inline, from: alice, to: web:8443, tls: {send: x, expect_error: timeout}}
"""


def test_scenarios_parse_into_steps_that_say_what_they_do(write_lab):
    scenario = read(write_lab, SCENARIO).scenarios["s"]
    assert [step.text for step in scenario.steps] == [
        "impair lan loss 20%", "partition alice -- web", "check 'tls'", "heal every fault",
        "wait for 'tls'", "pause web", "check 'inline'"]
    assert scenario.steps[4].checks[0].within == 5.0
    assert read(write_lab, SCENARIO).checks[0].within is None  # the lab's own check is untouched


@pytest.mark.parametrize("step, expected", [
    ("    - reboot: web", "scenarios.s[0]: expected one step: impair, fault, heal, check, wait-for"),
    ("    - check: nope", "scenarios.s[0].check: no check named 'nope'"),
    ("    - fault: {stop: nobody}", "scenarios.s[0].fault.stop: no host 'nobody'"),
    ("    - fault: {partition: alice}", "scenarios.s[0].fault.partition: expected two sets of hosts"),
    ("    - impair: {lan: {loss: x}}", "scenarios.s[0].impair.lan.loss: expected a share"),
])
def test_bad_scenario_steps(write_lab, step, expected):
    assert expected in error_for(write_lab, LAB + "scenarios:\n  s:\n" + step + "\n")


WIRE = """
  - name: wire
    wire:
      at: {at}
      during: [{during}]
      expect:
        - {expect}
"""


@pytest.mark.parametrize("at, during, expect, expected", [
    ("dmz", "tls", "handshake: alice => web", "checks[1].wire.expect[0].handshake: expected 'HOST -> HOST:PORT'"),
    ("dmz", "tls", "sniff: web", "checks[1].wire.expect[0].sniff: unknown wire expectation 'sniff'"),
    ("dmz", "nope", "no_plaintext: hi", "checks[1].wire.during[0]: no exchange check named 'nope'"),
    ("wan", "tls", "no_plaintext: hi", "checks[1].wire.at: 'wan' is neither a host nor a network"),
])
def test_bad_wire_checks(write_lab, at, during, expect, expected):
    text = LAB + WIRE.format(at=at, during=during, expect=expect)
    assert expected in error_for(write_lab, text)


def _client_hello(server_name: str) -> bytes:
    context = ssl.create_default_context()
    client = context.wrap_bio(ssl.MemoryBIO(), outgoing := ssl.MemoryBIO(), server_hostname=server_name)
    with pytest.raises(ssl.SSLWantReadError):
        client.do_handshake()
    return outgoing.read()


def test_client_hello_names_the_server():
    assert client_hello_server_name(_client_hello("web")) == "web"
    assert client_hello_server_name(b"GET / HTTP/1.1\r\n") is None


def test_pcap_reader_finds_tcp_segments():
    payload = _client_hello("web")
    tcp = struct.pack("!HHIIBBHHH", 40000, 8443, 1, 0, 5 << 4, 0x18, 65535, 0, 0) + payload
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 0, 0, 64, 6, 0,
                     bytes([10, 1, 1, 2]), bytes([10, 1, 2, 10])) + tcp
    frame = b"\x02" * 6 + b"\x04" * 6 + b"\x08\x00" + ip
    pcap = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)
    pcap += struct.pack("<IIII", 1, 500000, len(frame), len(frame)) + frame
    [packet] = list(read_pcap(pcap))
    assert (packet.source, packet.destination, packet.destination_port) == ("10.1.1.2", "10.1.2.10", 8443)
    assert packet.time == 1.5 and not packet.syn
    assert client_hello_server_name(packet.payload) == "web"


def test_rates_read_as_tc_reads_them():
    assert parse_rate("10mbit") == 10e6
    assert parse_rate("1mbps") == 8e6   # bytes, as in tc
    assert parse_rate("10") is None and parse_rate("1bit") is None
