"""ping and raw IP on the real engine, across a router, judged from both sides: for ping
the replies the client got and the echo requests the target's own namespace counted; for
raw IP the packets that left and the target's raw listener's transcript."""

from __future__ import annotations

import pytest

from labctl.ops import faults
from labctl.ops.checks import run_checks

from .conftest import quiet, running_text

LAB = """
name: itest-ping
networks:
  lan: {subnet: 10.239.1.0/24}
  dmz: {subnet: 10.239.2.0/24}
  island: {subnet: 10.239.3.0/24}
hosts:
  gw: {networks: {lan: 10.239.1.254, dmz: 10.239.2.254}, router: true}
  alice: {networks: [lan]}
  web: {networks: [dmz], services: [{tcp-echo: {port: 7}}, {raw-listener: {protocol: 253}}]}
  castaway: {networks: [island]}
  bridge: {networks: [lan, island]}
checks:
  - {name: across the router, from: alice, to: web, ping: {count: 3, max_rtt: 500ms, size: 200}}
  - {name: to a client host, from: web, to: alice, ping: {count: 2}}
  - {name: no route to the island, from: alice, to: castaway, ping: {count: 2, expect_error: timeout}, timeout: 3s}
  - {name: expected to reach the island, from: alice, to: castaway, ping: {count: 1}, timeout: 2s}
  - {name: raw 253, from: alice, to: web, raw: {protocol: 253, send: "over raw ip", count: 2},
     server: {count: 2, received: "over raw ip"}}
"""


@pytest.fixture(scope="module")
def ping_lab(engine, tmp_path_factory):
    yield from running_text(engine, LAB, tmp_path_factory.mktemp("ping"))


def echos_in(engine, lab, host: str) -> int:
    lines = [line.split() for line in engine.exec(lab.topology, host, ["cat", "/proc/net/snmp"])
             .stdout.decode().splitlines() if line.startswith("Icmp:")]
    return int(lines[1][lines[0].index("InEchos")])


def test_ping_across_a_router_is_proved_from_both_sides(engine, image, ping_lab):
    before = echos_in(engine, ping_lab, "web")
    results = {r.name: r for r in run_checks(ping_lab.topology, engine, ping_lab.checks, image)}
    assert echos_in(engine, ping_lab, "web") - before >= 3
    across = results["across the router"]
    assert across.passed, across.reason
    assert across.observed["icmp"]["received"] == 3 and len(across.observed["icmp"]["rtt_ms"]) == 3
    assert results["to a client host"].passed, results["to a client host"].reason
    # Hosts on a network no router joins are not reachable, and a ping that should be fails.
    assert results["no route to the island"].passed, results["no route to the island"].reason
    unreached = results["expected to reach the island"]
    assert not unreached.passed and unreached.reason.startswith(("timeout", "unreachable")), unreached.reason


def test_raw_ip_is_proved_by_the_targets_listener(engine, image, ping_lab):
    check = next(c for c in ping_lab.checks if c.name == "raw 253")
    [result] = run_checks(ping_lab.topology, engine, [check], image)
    assert result.passed, result.reason
    assert len(result.server) == 2 and {entry["peer"] for entry in result.server} == \
        {str(ping_lab.topology.hosts["alice"].address_on("lan"))}
    assert all(entry["preview"] == "over raw ip" and entry["port"] == 253 for entry in result.server)


def test_ping_and_raw_across_a_partition_fail_and_pass_once_healed(engine, image, ping_lab):
    checks = [c for c in ping_lab.checks if c.name in ("across the router", "raw 253")]
    faults.partition(ping_lab.topology, engine, [["alice"], ["web"]], quiet)
    try:
        cut = {r.name: r for r in run_checks(ping_lab.topology, engine, checks, image)}
    finally:
        faults.heal(ping_lab.topology, engine, quiet)
    ping = cut["across the router"]
    assert not ping.passed and ping.reason.startswith(("timeout", "unreachable")), ping.reason
    assert not cut["raw 253"].passed and "the server saw no such exchange" in cut["raw 253"].reason, \
        cut["raw 253"].reason
    healed = run_checks(ping_lab.topology, engine, checks, image)
    assert all(r.passed for r in healed), [(r.name, r.reason) for r in healed]
