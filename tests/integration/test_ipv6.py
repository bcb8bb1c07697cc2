"""IPv6 on the real engine: dual-stack and IPv6-only networks joined by a router, each
exchange judged from both sides; a partition and an impairment on IPv6 traffic; a wire
check on it; the lab's DNS answering AAAA and PTR under ip6.arpa; and `internal` shown
from the routing and filter tables, never by sending anything out of the lab."""

from __future__ import annotations

import base64
import ipaddress
import json
import statistics

import pytest

from labctl.names import SERVICES_PATH, bridge_name, fabric_tag
from labctl.ops.checks import read_transcript, run_checks

from .conftest import leftovers, run_cli, running_text

ALICE6 = "fd00:237:1::10"
LAB = """
name: itest-six
networks:
  lan: {subnet: 10.237.1.0/24, subnet6: "fd00:237:1::/64"}
  dmz: {subnet: 10.237.2.0/24, subnet6: "fd00:237:2::/64"}
  six: {subnet6: "fd00:237:6::/64"}        # IPv6 only
hosts:
  gw: {networks: [lan, dmz, six], router: true}
  alice: {networks: {lan: "%s"}}            # a static IPv6 address; IPv4 automatic
  bob: {networks: [lan]}
  web:
    networks: [dmz]
    services: [{tcp-echo: {port: 7}}, {udp-echo: {port: 7}}, {http: {port: 8080}}, {raw-listener: {protocol: 253}}]
  only6: {networks: [six], services: [{tcp-echo: {port: 7}}]}
  ns:
    networks: [dmz]
    services: [{dns: {zone: six.lab, records: [{name: www, type: CNAME, value: web}]}}]
  carol: {networks: [dmz]}
  member: {networks: [dmz], services: [{udp-listener: {port: 5000, group: "ff15::1:2"}}]}
  outsider: {networks: [dmz], services: [{udp-listener: {port: 5000}}]}
checks:
  - name: tcp over ipv6 across the router
    family: 6
    from: alice
    to: web:7
    tcp: {send: "six\\n", expect: "six\\n"}
    server: {from: alice, count: 1, received: "six\\n"}
  - name: the server must have seen bob            # it saw alice: must fail
    family: 6
    from: alice
    to: web:7
    tcp: {send: "six\\n", expect: "six\\n"}
    server: {from: bob}
  - name: web sees alice's ipv6 address
    family: 6
    from: alice
    to: web:8080
    http: {path: /headers, expect: {regex: '"client": "{client}"'}}
  - name: web sees alice's ipv4 address by default
    from: alice
    to: web:8080
    http: {path: /headers, expect: {regex: '"client": "{client}"'}}
  - name: udp over ipv6
    family: 6
    from: bob
    to: web:7
    udp: {send: "ping", expect: "ping", count: 10}
    server: {from: bob, count: 10}
  - name: an ipv6-only host across the router
    from: alice
    to: only6:7
    tcp: {send: "only\\n", expect: "only\\n"}
  - name: ping over ipv6
    family: 6
    from: alice
    to: web
    ping: {count: 3}
  - name: raw ip over ipv6
    family: 6
    from: alice
    to: web
    raw: {protocol: 253, send: "next header 253", count: 2}
    server: {count: 2, received: "next header 253"}
  - name: the ipv6 group hears it, and only the group
    from: carol
    to: "[ff15::1:2]:5000"
    udp: {send: "to the group", heard_by: [member], not_heard_by: [outsider]}
  - name: a group never crosses the router           # sent from the lan: must fail
    from: alice
    to: "[ff15::1:2]:5000"
    udp: {send: "to the group", heard_by: [member]}
  - name: alice reaches over ipv6
    family: 6
    reach: {from: [alice], to: [bob, web, only6]}
  - name: the handshake crossed the dmz over ipv6
    wire:
      at: dmz
      during: [tcp over ipv6 across the router]
      expect:
        - handshake: alice -> web:7
  - name: a handshake bob never made                # must fail
    wire:
      at: dmz
      during: [tcp over ipv6 across the router]
      expect:
        - handshake: bob -> web:7
  - name: aaaa for web
    from: alice
    to: ns:53
    dns: {name: web.six.lab, type: AAAA, expect: "{web6}"}
  - name: aaaa through a cname
    from: alice
    to: ns:53
    dns: {name: www.six.lab, type: AAAA, expect: [web.six.lab, "{web6}"]}
  - name: ptr under ip6.arpa
    from: bob
    to: ns:53
    dns: {name: "{alice_ptr}", type: PTR, expect: alice.six.lab}
  - name: a for web
    family: 6
    from: alice
    to: ns:53
    dns: {name: web.six.lab, type: A, expect: "{web4}"}
""" % ALICE6

MUST_FAIL = {"the server must have seen bob", "a handshake bob never made", "a group never crosses the router"}


@pytest.fixture(scope="module")
def six(engine, image, tmp_path_factory):
    # Addresses are automatic, in host order: gw ::2, then web ::3 on the dmz.
    text = LAB.replace("{web6}", "fd00:237:2::3").replace("{web4}", "10.237.2.3").replace(
        "{alice_ptr}", ipaddress.ip_address(ALICE6).reverse_pointer)
    folder = tmp_path_factory.mktemp("six")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LABCTL_SHAPER", "fallback")   # the mechanism this kernel needs anyway
        yield from running_text(engine, text, folder)
    # Its forwarding rules included, IPv6's too.
    assert leftovers(engine, load_topology(folder), image) == {}


def load_topology(folder):
    from .conftest import load
    return load(folder / "lab.yaml").topology


def ip6tables(engine, topology, image) -> list[str]:
    """The engine machine's IPv6 FORWARD chain, read in its own namespace."""
    result = engine.run_in_namespace(topology, None, image, ["ip6tables", "-w", "-S", "FORWARD"],
                                     cap_add=["NET_ADMIN"])
    assert result.exit_code == 0, result.stderr.decode()
    return result.stdout.decode().splitlines()


def cli(lab, *args: str):
    result = run_cli("-f", str(lab.file), *args)
    assert result.returncode == 0, result.stderr
    return result


def results_of(engine, image, lab, names=None):
    checks = [c for c in lab.checks if names is None or c.name in names]
    return {r.name: r for r in run_checks(lab.topology, engine, checks, image)}


def test_ipv6_exchanges_are_proved_from_both_sides(engine, image, six):
    results = results_of(engine, image, six)
    for name, result in results.items():
        assert result.passed != (name in MUST_FAIL), (name, result.reason)
    assert f"the server saw it from {ALICE6}, expected bob" in results["the server must have seen bob"].reason
    # {client} is alice's own IPv6 address over IPv6, and her IPv4 address by default.
    def body(name: str) -> str:
        return base64.b64decode(results[name].observed["replies"][-1]).decode()
    assert f'"client": "{ALICE6}"' in body("web sees alice's ipv6 address")
    ipv4 = str(six.topology.hosts["alice"].address_on("lan", 4))
    assert f'"client": "{ipv4}"' in body("web sees alice's ipv4 address by default")
    assert results["ping over ipv6"].observed["icmp"]["received"] == 3
    assert [entry["peer"] for entry in results["raw ip over ipv6"].server] == [ALICE6, ALICE6]
    assert "member did not hear the multicast" in results["a group never crosses the router"].reason
    assert sorted(name for name in results if name.startswith("alice reaches over ipv6: ")) == [
        "alice reaches over ipv6: alice → bob", "alice reaches over ipv6: alice → only6",
        "alice reaches over ipv6: alice → web"]


def test_internal_ipv6_has_no_route_out_and_the_filter_keeps_it_in(engine, image, six):
    topology = six.topology
    subnets = [n.subnet6 for n in topology.networks.values() if n.subnet6]
    for host in topology.hosts:
        routes = engine.exec(topology, host, ["ip", "-6", "route", "show"]).stdout.decode().splitlines()
        assert routes, host
        for route in routes:
            destination = route.split()[0]
            assert destination != "default", f"{host} has an IPv6 default route: {route}"
            network = ipaddress.ip_network(destination)
            assert network.is_link_local or any(network.subnet_of(s) for s in subnets), (host, route)
    rules = [line for line in ip6tables(engine, topology, image) if fabric_tag(topology) in line]
    for name in topology.networks:
        bridge = bridge_name(topology, name)
        mine = [rule for rule in rules if bridge in rule.split()]
        accept = next(i for i, r in enumerate(mine) if f"-i {bridge} -o {bridge}" in r and r.endswith("ACCEPT"))
        drops = [i for i, r in enumerate(mine) if r.endswith("DROP")]
        assert len(drops) == 2 and accept < min(drops), mine
        assert any(f"-i {bridge} " in mine[i] for i in drops) and any(f"-o {bridge} " in mine[i] for i in drops)


def test_ipv6_partition_times_out_and_heals(engine, image, six):
    names = {"tcp over ipv6 across the router", "udp over ipv6"}
    cli(six, "partition", "alice", "--", "web")
    try:
        results = results_of(engine, image, six, names)
        cut = results["tcp over ipv6 across the router"]
        assert not cut.passed and cut.reason.startswith("timeout"), cut.reason
        assert results["udp over ipv6"].passed, "the partition cuts alice off from web only"
    finally:
        cli(six, "heal")
    assert results_of(engine, image, six, names)["tcp over ipv6 across the router"].passed


def measure_rtt(engine, topology, host: str, count: int = 25) -> float:
    result = engine.exec(topology, host, ["python3", f"{SERVICES_PATH}/measure.py", "rtt",
                                          "fd00:237:2::3", "7", str(count)])
    assert result.exit_code == 0, result.stderr.decode()
    return statistics.median(json.loads(result.stdout))


def test_ipv6_delay_is_applied_within_20_percent(engine, image, six):
    baseline = measure_rtt(engine, six.topology, "bob")
    cli(six, "impair", "alice:lan", "--delay", "80ms")
    try:
        added = measure_rtt(engine, six.topology, "alice") - baseline
        assert abs(added - 0.080) <= 0.2 * 0.080, f"added {added * 1000:.1f}ms over IPv6, declared 80ms"
        # Neighbour discovery is spared: under total loss alice still resolves the router.
        cli(six, "impair", "alice:lan", "--loss", "100%")
        flushed = engine.run_in_namespace(six.topology, "alice", image, ["ip", "-6", "neigh", "flush", "all"],
                                          cap_add=["NET_ADMIN"])
        assert flushed.exit_code == 0, flushed.stderr.decode()
        ping = results_of(engine, image, six, {"ping over ipv6"})["ping over ipv6"]
        assert not ping.passed, "every echo request should be lost"
        neighbours = engine.exec(six.topology, "alice", ["ip", "-6", "neigh", "show"]).stdout.decode()
        router = next(line for line in neighbours.splitlines() if line.startswith("fd00:237:1::2 "))
        assert "lladdr" in router, f"alice could not resolve the router under loss: {router}"
    finally:
        cli(six, "impair", "--clear")
    assert measure_rtt(engine, six.topology, "alice") < 0.040


RESOLVED = """
name: itest-six-dns
networks:
  dmz: {subnet: 10.223.2.0/24, subnet6: "fd00:223:2::/64"}
  six: {subnet6: "fd00:223:6::/64"}        # IPv6 only: the resolver is across the router
hosts:
  gw: {networks: [dmz, six], router: true}
  ns:
    networks: {dmz: [10.223.2.53, "fd00:223:2::53"]}
    services: [{dns: {zone: six.lab, resolver: true}}]
  web: {networks: {dmz: [10.223.2.80, "fd00:223:2::80"]}}
  only6: {networks: {six: "fd00:223:6::5"}}
"""


@pytest.fixture
def resolved(engine, image, tmp_path):
    yield from running_text(engine, RESOLVED, tmp_path)
    assert leftovers(engine, load_topology(tmp_path), image) == {}


def test_an_ipv6_only_host_resolves_through_the_lab_resolver(engine, resolved):
    topology = resolved.topology
    conf = engine.exec(topology, "only6", ["cat", "/etc/resolv.conf"]).stdout.decode()
    assert [line.split()[1] for line in conf.splitlines() if line.startswith("nameserver")] == ["fd00:223:2::53"]
    # The host's /etc/hosts holds no lab name: the answer can only come from the lab's DNS.
    found = engine.exec(topology, "only6", ["getent", "ahosts", "web"])
    assert found.exit_code == 0, (found.stdout, found.stderr)
    assert "fd00:223:2::80" in found.stdout.decode().split(), found.stdout.decode()
    asked = [entry for entry in read_transcript(topology, engine, "ns")
             if entry.get("service") == "dns" and entry.get("qname") == "web.six.lab"]
    assert asked and {entry["peer"] for entry in asked} == {"fd00:223:6::5"}, asked
