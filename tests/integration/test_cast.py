"""Broadcast and multicast UDP on the real engine: who hears a datagram sent to a whole
network or to a group is read from the udp-listeners' transcripts, and a host that must
not hear it is checked as carefully as one that must."""

from __future__ import annotations

import pytest

from labctl.ops import faults
from labctl.ops.checks import run_checks

from .conftest import quiet, running_text

LAB = """
name: itest-cast
networks:
  lan: {subnet: 10.237.1.0/24}
  dmz: {subnet: 10.237.2.0/24}
hosts:
  gw: {networks: [lan, dmz], router: true, services: [{udp-listener: {port: 5000}}]}
  alice: {networks: [lan]}
  bob:
    networks: [lan]
    services: [{udp-listener: {port: 5000}}, {udp-listener: {port: 5001, group: 239.1.2.3}}]
  carol: {networks: [lan], services: [{udp-listener: {port: 5001}}]}
  dave: {networks: [lan], services: [{udp-listener: {port: 5001, group: 239.1.2.3}}]}
  web:
    networks: [dmz]
    services: [{udp-listener: {port: 5000}}, {udp-listener: {port: 5001, group: 239.1.2.3}}]
checks:
  - name: a broadcast reaches exactly the lan
    from: alice
    to: lan:5000
    udp: {send: "to everyone on the lan", count: 2, heard_by: [bob, gw], not_heard_by: [web]}
  - name: the group hears it, and only the group on this network
    from: alice
    to: 239.1.2.3:5001
    udp: {send: "to the group", heard_by: [bob, dave], not_heard_by: [carol, web]}
  - name: a broadcast that should reach the dmz
    from: alice
    to: lan:5000
    udp: {send: "across?", heard_by: [web]}
"""


@pytest.fixture(scope="module")
def cast_lab(engine, tmp_path_factory):
    yield from running_text(engine, LAB, tmp_path_factory.mktemp("cast"))


def test_broadcast_and_multicast_reach_exactly_their_audience(engine, image, cast_lab):
    results = {r.name: r for r in run_checks(cast_lab.topology, engine, cast_lab.checks, image)}
    for name in ("a broadcast reaches exactly the lan", "the group hears it, and only the group on this network"):
        assert results[name].passed, (name, results[name].reason)
    across = results["a broadcast that should reach the dmz"]
    assert not across.passed and across.reason == "web did not hear the broadcast", across.reason


def test_a_partitioned_listener_does_not_hear_and_the_check_says_so(engine, image, cast_lab):
    broadcast, multicast = cast_lab.checks[:2]
    faults.partition(cast_lab.topology, engine, [["alice"], ["bob"]], quiet)
    try:
        results = run_checks(cast_lab.topology, engine, [broadcast, multicast], image)
    finally:
        faults.heal(cast_lab.topology, engine, quiet)
    assert [r.reason for r in results] == ["bob did not hear the broadcast", "bob did not hear the multicast"]
