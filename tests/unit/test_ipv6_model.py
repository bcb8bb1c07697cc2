"""IPv6 in the model: dual-stack and IPv6-only networks, addresses and routes in both
families, the check's `family`, and a one-line error for every bad IPv6 value."""

from __future__ import annotations

import pytest

from labctl.engines.factory import read_lab
from labctl.engines.kinds import EngineChoice
from labctl.errors import LabFileError
from labctl.model.addressing import computed_routes, hosts_table
from labctl.checks.judge import expected_peer, target_address

LAB = """\
name: six
networks:
  lan: {subnet: 10.1.1.0/24, subnet6: "fd00:1:1::/64"}
  dmz: {subnet: 10.1.2.0/24, subnet6: "fd00:1:2::/64"}
  six: {subnet6: "fd00:1:6::/64"}
  four: {subnet: 10.1.4.0/24}
hosts:
  gw: {networks: [lan, dmz, six], router: true}
  alice: {networks: {lan: "fd00:1:1::10"}}
  web: {networks: {dmz: [10.1.2.80, "fd00:1:2::80"]}, services: [{tcp-echo: {port: 7}}]}
  only6: {networks: [six], services: [{tcp-echo: {port: 7}}]}
  old: {networks: {lan: 10.1.1.50}}
  cast: {networks: [dmz], services: [{udp-listener: {port: 5000, group: "ff15::1:2"}}]}
  legacy: {networks: [four]}
checks:
  - {name: default, from: alice, to: "web:7", tcp: {send: a}}
  - {name: over six, family: 6, from: alice, to: "web:7", tcp: {send: a}}
  - {name: six only, from: alice, to: "only6:7", tcp: {send: a}}
  - {name: group, from: web, to: "[ff15::1:2]:5000", udp: {send: a, heard_by: [cast]}}
"""


def error(write_lab, text: str) -> str:
    path = write_lab(text)
    with pytest.raises(LabFileError) as caught:
        read_lab(path)
    message = str(caught.value)
    assert "\n" not in message and message.startswith(str(path)), message
    return message


def test_addresses_in_each_family_static_and_automatic(write_lab):
    lab = read_lab(write_lab(LAB))
    hosts = lab.topology.hosts
    alice = hosts["alice"].attachment("lan")
    assert str(alice.address6) == "fd00:1:1::10" and str(alice.address) == "10.1.1.3"   # gw has .2
    assert [str(a) for a in hosts["web"].attachment("dmz").addresses] == ["10.1.2.80", "fd00:1:2::80"]
    assert hosts["only6"].attachment("six").address is None
    assert str(hosts["only6"].address_on("six")) == "fd00:1:6::3"
    # The gateway is Docker's bridge: ::1 is never handed out.
    assert str(hosts["gw"].address_on("lan", 6)) == "fd00:1:1::2"


def test_routes_for_both_families_and_names_for_every_family_reachable(write_lab):
    topology = read_lab(write_lab(LAB)).topology
    routes = {str(r.destination): str(r.via) for r in computed_routes(topology, topology.hosts["alice"])}
    assert routes == {"10.1.2.0/24": "10.1.1.2", "fd00:1:2::/64": "fd00:1:1::2", "fd00:1:6::/64": "fd00:1:1::2"}
    table = hosts_table(topology, topology.hosts["alice"])
    assert ("web", topology.hosts["web"].address_on("dmz", 4)) in table
    assert ("web", topology.hosts["web"].address_on("dmz", 6)) in table
    # An IPv6-only host is listed by its IPv6 address alone.
    assert [str(a) for name, a in table if name == "only6"] == ["fd00:1:6::3"]


def test_a_check_runs_over_ipv4_unless_told_and_the_server_expects_the_same_family(write_lab):
    lab = read_lab(write_lab(LAB))
    by_name = {check.name: check for check in lab.checks}
    assert str(target_address(lab.topology, by_name["default"])) == "10.1.2.80"
    assert str(target_address(lab.topology, by_name["over six"])) == "fd00:1:2::80"
    assert str(expected_peer(lab.topology, by_name["over six"])[1]) == "fd00:1:1::10"
    assert str(expected_peer(lab.topology, by_name["default"])[1]) == "10.1.1.3"
    # What the target offers: an IPv6-only host is reached over IPv6 without saying so.
    assert str(target_address(lab.topology, by_name["six only"])) == "fd00:1:6::3"
    assert by_name["group"].fan_out == ("multicast", "ff15::1:2")


@pytest.mark.parametrize("change, key, words", [
    (('six: {subnet6: "fd00:1:6::/64"}', 'six: {subnet6: "fd00:1:2:0:1::/80"}'),
     "networks.six.subnet6", "subnet fd00:1:2:0:1::/80 overlaps network 'dmz' (fd00:1:2::/64)"),
    (('six: {subnet6: "fd00:1:6::/64"}', 'six: {subnet6: "10.9.0.0/24"}'),
     "networks.six.subnet6", "10.9.0.0/24 is an IPv4 subnet: give it as subnet"),
    (('lan: {subnet: 10.1.1.0/24,', 'lan: {subnet: "fd00:9::/64",'),
     "networks.lan.subnet", "fd00:9::/64 is an IPv6 subnet: give it as subnet6"),
    (('six: {subnet6: "fd00:1:6::/64"}', 'six: {subnet6: "fe80::/64"}'),
     "networks.six.subnet6", "is link-local"),
    (('six: {subnet6: "fd00:1:6::/64"}', 'six: {subnet6: "ff05::/64"}'),
     "networks.six.subnet6", "is multicast"),
    (('six: {subnet6: "fd00:1:6::/64"}', 'six: {subnet6: "fd00:1:6::/124"}'),
     "networks.six.subnet6", "from /16 to /120"),
    (('six: {subnet6: "fd00:1:6::/64"}', 'six: {subnet6: "fd00:1:6::1/64"}'),
     "networks.six.subnet6", "expected an IPv6 subnet such as fd00:10:1::/64"),
    (('six: {subnet6: "fd00:1:6::/64"}', 'six: {internal: true}'),
     "networks.six", "expected subnet (IPv4, such as 10.1.1.0/24)".replace("10.1.1.0/24", "10.10.1.0/24")),
    (('old: {networks: {lan: 10.1.1.50}}', 'old: {networks: {six: 10.1.6.5}}'),
     "hosts.old.networks.six", "10.1.6.5 is an IPv4 address but network 'six' has no subnet"),
    (('old: {networks: {lan: 10.1.1.50}}', 'old: {networks: {lan: "fd00:1:9::5"}}'),
     "hosts.old.networks.lan", "address fd00:1:9::5 is outside network 'lan' (fd00:1:1::/64)"),
    (('old: {networks: {lan: 10.1.1.50}}', 'old: {networks: {lan: ["fd00:1:1::5", "fd00:1:1::6"]}}'),
     "hosts.old.networks.lan[1]", "two IPv6 addresses for 'lan'; give one per family"),
    (('old: {networks: {lan: 10.1.1.50}}', 'old: {networks: {lan: "fd00:1:1::1"}}'),
     "hosts.old.networks.lan", "reserved for Docker's bridge"),
    (('old: {networks: {lan: 10.1.1.50}}', 'old: {networks: {lan: "fd00:1:1::10"}}'),
     "hosts.old.networks.lan", "duplicate address fd00:1:1::10: host 'alice'"),
    (('old: {networks: {lan: 10.1.1.50}}', 'old: {networks: {lan: "fd00:1:1::"}}'),
     "hosts.old.networks.lan", "subnet-router anycast address"),
    (('group: "ff15::1:2"', 'group: "fd00::1"'),
     "hosts.cast.services[0].udp-listener.group", "fd00::1 is not a multicast group: IPv6 groups are in ff00::/8"),
    (('old: {networks: {lan: 10.1.1.50}}', 'old: {networks: [lan], routes: [{to: "fd00:9::/64", via: 10.1.1.2}]}'),
     "hosts.old.routes[0].via", "10.1.1.2 is IPv4 but the route to fd00:9::/64 is IPv6"),
    (('- {name: default, from: alice', '- {name: default, family: 6, from: legacy'),
     "checks[0].family", "'legacy' has no IPv6 address: none of its networks (four) has a subnet6"),
    (('- {name: default, from: alice', '- {name: default, family: 5, from: alice'),
     "checks[0].family", "expected 4 or 6 (IPv4 or IPv6), got a number (5)"),
    (('to: "[ff15::1:2]:5000"', 'to: "[fd00::9]:5000"'),
     "checks[3].to", "[fd00::9] is not a multicast group: groups are in ff00::/8"),
    (('to: "[ff15::1:2]:5000", udp: {', 'to: "dmz:5000", family: 6, udp: {'),
     "checks[3].family", "IPv6 has no broadcast"),
    (('to: "[ff15::1:2]:5000", udp: {', 'to: "six:5000", udp: {'),
     "checks[3].to", "network 'six' is IPv6 only, and IPv6 has no broadcast"),
])
def test_every_bad_ipv6_value_is_a_one_line_error_naming_the_key(write_lab, change, key, words):
    old, new = change
    assert old in LAB, old
    message = error(write_lab, LAB.replace(old, new))
    assert f" {key}: " in message and words in message, message


def test_swarm_refuses_ipv6_naming_its_limitation(write_lab):
    path = write_lab(LAB.replace("old: {networks: {lan: 10.1.1.50}}", "old: {networks: [lan]}")
                     .replace('alice: {networks: {lan: "fd00:1:1::10"}}', "alice: {networks: [lan]}")
                     .replace('{dmz: [10.1.2.80, "fd00:1:2::80"]}', "[dmz]"))
    with pytest.raises(LabFileError) as caught:
        read_lab(path, EngineChoice(kind="swarm"))
    message = str(caught.value)
    assert "networks.lan.subnet6: IPv6 is not available on Swarm" in message and "moby #43615" in message
    assert "\n" not in message


def test_validate_for_swarm_refuses_the_dual_stack_default_lab_as_people_type_it():
    import subprocess
    import sys
    from ..conftest import REPO
    result = subprocess.run([sys.executable, "-m", "labctl", "validate", "--engine", "swarm", "lab.yaml"],
                            cwd=REPO, capture_output=True, text=True, timeout=60)
    assert result.returncode == 3 and result.stdout == ""   # a lab file wrong for the engine
    [line] = result.stderr.splitlines()
    assert line.startswith("labctl: error: lab.yaml:") and "networks.lan.subnet6: IPv6 is not available on Swarm" in line


def test_a_group_takes_its_family_and_its_sender_needs_an_address_in_it(write_lab):
    message = error(write_lab, LAB.replace('- {name: group, from: web,', '- {name: group, from: legacy,'))
    assert " checks[3].to: 'legacy' has no IPv6 address" in message, message
    lab = read_lab(write_lab(LAB))
    assert {check.name: check.family for check in lab.checks}["group"] == 6
