"""Isolation on the real engine, shown from the rule tables and the engine's own records,
never by sending anything to the engine machine's addresses: no lab bridge reaches the
engine machine's own services, in either family, whether its network is internal or not;
a host with no way out is refused Docker's embedded resolver; no host starts before those
rules stand; every helper and sidecar is capped; and `down` leaves none of it."""

from __future__ import annotations

import json
from datetime import datetime

import pytest

from labctl.engines.containers import disk_quota
from labctl.names import (FABRIC_SERVICE, HELPER_MEMORY, HELPER_PIDS, LAB_LABEL, PROBE_MEMORY, PROBE_PIDS,
                          ROLE_LABEL, SIDECAR_MEMORY, SIDECAR_PIDS, bridge_name, fabric_tag, program)

from .conftest import leftovers, load, running_text

LAB = """
name: itest-iso
networks:
  inner: {subnet: 10.228.1.0/24, subnet6: "fd00:228:1::/64"}
  outer: {subnet: 10.228.2.0/24, subnet6: "fd00:228:2::/64", internal: false}
  plain: {subnet: 10.228.3.0/24}          # IPv4 only: its bridge still has IPv6 link-local
hosts:
  shut: {networks: [inner, plain], services: [{tcp-echo: {port: 7}}]}
  open: {networks: [inner, outer]}
  early:                                  # a program whose very first act is a lookup
    networks: [inner]
    command: ["python3", "-u", "-c", "import socket, time\\ntry:\\n    socket.create_connection(('127.0.0.11', 53), 2)\\n    print('first lookup: answered')\\nexcept OSError as exc:\\n    print('first lookup: refused', exc)\\ntime.sleep(3600)"]
impairments:
  open: {delay: 10ms}
"""
NEIGHBOUR_DISCOVERY = {"133", "134", "135", "136", "137"}
EMBEDDED_DNS = "127.0.0.11/32"


@pytest.fixture(scope="module")
def iso(engine, image, tmp_path_factory):
    folder = tmp_path_factory.mktemp("iso")
    yield from running_text(engine, LAB, folder)
    topology = load(folder / "lab.yaml").topology
    # Its INPUT rules included, in both families, and the fabric's forwarding rules.
    assert leftovers(engine, topology, image) == {}
    bridges = [bridge_name(topology, name) for name in topology.networks]
    for family in (4, 6):
        assert not [rule for rule in chain(engine, topology, image, family, "INPUT")
                    if any(bridge in rule.split() for bridge in bridges)]


def chain(engine, topology, image, family: int, name: str, host: str | None = None) -> list[str]:
    """A chain of the engine machine's filter table (or of `host`'s), read in its own namespace."""
    binary = "ip6tables" if family == 6 else "iptables"
    result = engine.run_in_namespace(topology, host, image, [binary, "-w", "-S", name], cap_add=["NET_ADMIN"])
    assert result.exit_code == 0, result.stderr.decode()
    return [line for line in result.stdout.decode().splitlines() if line.startswith("-A ")]


def option(rule: str, name: str) -> str | None:
    words = rule.split()
    return words[words.index(name) + 1] if name in words else None


def may_let_in(rule: str, bridge: str) -> bool:
    """Whether a rule could let a packet from `bridge` through, or hand it to a chain that might."""
    interface = option(rule, "-i")
    return (interface is None or interface == bridge) and option(rule, "-j") not in ("DROP", "REJECT")


def test_nothing_enters_the_engine_machine_from_any_lab_bridge_in_either_family(engine, image, iso):
    topology = iso.topology
    tag = f'"{fabric_tag(topology)}"'
    for family in (4, 6):
        rules = chain(engine, topology, image, family, "INPUT")
        for network in topology.networks:
            bridge = bridge_name(topology, network)
            drop = next((i for i, rule in enumerate(rules) if option(rule, "-i") == bridge
                         and option(rule, "-j") == "DROP" and option(rule, "--comment") == tag
                         and option(rule, "-p") is None), None)
            assert drop is not None, (family, network, rules)
            before = [rule for rule in rules[:drop] if may_let_in(rule, bridge)]
            if family == 4:
                assert before == [], (network, before)
                continue
            # IPv6: only neighbour discovery, this lab's own, stands before the drop.
            assert sorted(option(rule, "--icmpv6-type") for rule in before) == sorted(NEIGHBOUR_DISCOVERY), before
            assert all(option(rule, "-i") == bridge and option(rule, "-p") == "ipv6-icmp"
                       and option(rule, "--comment") == tag for rule in before), before


def test_no_host_starts_before_the_fabric_has_set_its_rules(engine, iso):
    containers = {c.labels.get("com.docker.compose.service"): c for c in engine.client.containers.list(
        all=True, filters={"label": f"{LAB_LABEL}={iso.topology.name}"})}
    fabric = containers[FABRIC_SERVICE].attrs["State"]
    assert fabric["ExitCode"] == 0
    done = timestamp(fabric["FinishedAt"])
    for host in iso.topology.hosts:
        assert timestamp(containers[host].attrs["State"]["StartedAt"]) > done, host


def timestamp(text: str) -> datetime:
    whole, _, fraction = text.rstrip("Z").partition(".")
    return datetime.fromisoformat(f"{whole}.{(fraction + '000000')[:6]}")


def test_a_host_with_no_way_out_is_refused_dockers_resolver(engine, image, iso):
    topology = iso.topology
    refused = [rule for rule in chain(engine, topology, image, 4, "OUTPUT", host="shut")
               if option(rule, "-d") == EMBEDDED_DNS]
    assert [(option(rule, "-p"), option(rule, "-j"), option(rule, "--reject-with")) for rule in refused] == [
        ("tcp", "REJECT", "tcp-reset"), (None, "REJECT", "icmp-port-unreachable")], refused
    # And what a raw socket writes past OUTPUT straight to its real port is dropped coming in.
    assert [option(rule, "-j") for rule in chain(engine, topology, image, 4, "INPUT", host="shut")
            if option(rule, "-d") == EMBEDDED_DNS] == ["DROP"]
    # A host with a network out keeps it: it can reach the world's resolvers anyway.
    assert not [rule for rule in chain(engine, topology, image, 4, "OUTPUT", host="open")
                if option(rule, "-d") == EMBEDDED_DNS]
    # What that means in the host: its lab names still resolve (/etc/hosts), Docker's
    # resolver answers nothing, and a name the lab does not know fails at once.
    probe = engine.exec(topology, "shut", ["python3", "-c", LOOKUPS])
    assert probe.exit_code == 0, probe.stderr.decode()
    seen = json.loads(probe.stdout)
    assert seen["open"] == str(topology.hosts["open"].address_on("inner", 4))
    # Refused on the spot: the sender sees the rule's verdict (EPERM) or its answer.
    assert seen["udp"] in ("PermissionError", "ConnectionRefusedError") and seen["tcp"] == "ConnectionRefusedError", seen
    assert seen["unknown"].startswith("gaierror") and seen["unknown_seconds"] < 1.0, seen


LOOKUPS = """
import json, socket, time
seen = {"open": socket.gethostbyname("open")}
query = bytes.fromhex("12340100000100000000000007657861 6d706c6503636f6d0000010001".replace(" ", ""))
for kind, family in (("udp", socket.SOCK_DGRAM), ("tcp", socket.SOCK_STREAM)):
    s = socket.socket(socket.AF_INET, family)
    s.settimeout(3)
    try:
        s.connect(("127.0.0.11", 53))
        s.send(query if kind == "udp" else len(query).to_bytes(2, "big") + query)
        s.recv(512)
        seen[kind] = "answered"
    except OSError as exc:
        seen[kind] = exc.__class__.__name__
started = time.monotonic()
try:
    socket.getaddrinfo("nowhere.example.com", 80)
    seen["unknown"] = "resolved"
except OSError as exc:
    seen["unknown"] = f"{exc.__class__.__name__}: {exc}"
seen["unknown_seconds"] = time.monotonic() - started
print(json.dumps(seen))
"""


def caps(container) -> tuple[int, int, int]:
    config = container.attrs["HostConfig"]
    return config["Memory"], config["MemorySwap"], config["PidsLimit"]


def test_a_programs_first_lookup_is_already_refused(engine, iso):
    """The lab's program starts only once the resolver is refused: not even its first act
    reaches Docker's resolver."""
    said = b"".join(engine.logs(iso.topology, "early")).decode()
    assert "first lookup: refused" in said and "answered" not in said, said


def test_every_helper_and_sidecar_is_capped_and_hosts_disks_where_the_engine_can(engine, image, iso):
    topology = iso.topology
    containers = engine.client.containers.list(all=True, filters={"label": f"{LAB_LABEL}={topology.name}"})
    roles = {c.labels.get("com.docker.compose.service"): c.labels.get(ROLE_LABEL) for c in containers}
    # Routes come from one admin helper, gone once `up` is: no container per routed host.
    assert set(roles) == {*topology.hosts, "lc-net-open", FABRIC_SERVICE}, roles
    sized, storage = disk_quota(engine.client, image)
    for container in containers:
        role = container.labels.get(ROLE_LABEL)
        if role == "host":
            size = (container.attrs["HostConfig"].get("StorageOpt") or {}).get("size")
            assert size == (str(1 << 30) if sized else None), (container.name, storage, size)
            continue
        memory = SIDECAR_MEMORY if role == "net" else HELPER_MEMORY
        pids = SIDECAR_PIDS if role == "net" else HELPER_PIDS
        assert caps(container) == (memory, memory, pids), container.name
    # One-shot helpers labctl starts itself (a check's probe, a read of a host's tables) are
    # capped too, as the engine accounts them from inside.
    limits = ["sh", "-c", "cat /sys/fs/cgroup/memory.max /sys/fs/cgroup/pids.max 2>/dev/null || "
              "cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/pids/pids.max"]
    read = engine.run_in_namespace(topology, "shut", image, limits)
    assert read.stdout.decode().split() == [str(HELPER_MEMORY), str(HELPER_PIDS)], read
    # A check's probe runs up to 32 checks and 256 load clients at once: more room. (The
    # probe's path is only the shell's $0 here.)
    probe = engine.run_in_namespace(topology, "shut", image, [*limits, program("probe")])
    assert probe.stdout.decode().split() == [str(PROBE_MEMORY), str(PROBE_PIDS)], probe
