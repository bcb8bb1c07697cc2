"""What the page draws, as JSON (GET /api/lab): the lab's networks and hosts with their
addresses of both families, services, states and faults; the impairments and partitions
in force; and each check with its last result. The faults are `labctl status`'s own
(labctl.ops.faults.Faults), read without running anything in the hosts (no health probe):
the engine's states in one request, each running host's networks asked in parallel, so a
large lab's page comes quickly."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ..engines.base import Engine
from ..errors import LabError
from ..labfile.load import Lab
from ..model.impairment import format_value
from ..model.shaping import effective, load_live
from ..model.topology import Topology
from ..ops.faults import Faults, current_faults
from ..ops.picture import LAST_CHECKS, last_results

STATES = ("running", "exited", "paused", "restarting", "created", "absent")
# What `labctl status` calls a host the engine does not hold, or did not say, in the page's words.
SHOWN_AS = {"dead": "exited", "missing": "absent", "unreachable": "absent", "removing": "exited"}
ASKED_AT_ONCE = 16     # hosts whose networks are asked of the engine at once


def faults_now(topology: Topology, engine: Engine, running: list[str]) -> Faults:
    """Every host's faults, as `labctl status` finds them, its running hosts' networks asked
    side by side."""
    bent = current_faults(topology, engine, [])   # partitions and impairments: the lab's state

    def attached(host: str) -> list[str]:
        try:
            return engine.attached(topology, host)
        except LabError:   # gone meanwhile: its state says so
            return list(topology.hosts[host].networks)
    with ThreadPoolExecutor(max_workers=ASKED_AT_ONCE) as pool:
        found = dict(zip(running, pool.map(attached, running)))
    disconnected = {host: [network for network in topology.hosts[host].networks if network not in networks]
                    for host, networks in found.items()}
    return Faults({host: gone for host, gone in disconnected.items() if gone}, bent.partitioned_from, bent.impaired)


def lab_json(lab: Lab, engine: Engine, last: dict[str, dict[str, Any]], can_act: bool) -> dict[str, Any]:
    """The lab as the page shows it. `last`: each check's last result as this server saw it
    (from check events), which wins over what `labctl check` last wrote beside the lab."""
    topology = lab.topology
    states = {state.name: state.state for state in engine.states(topology)
              if state.role == "host" and state.name in topology.hosts}
    faults = faults_now(topology, engine, [name for name, state in states.items() if state == "running"])
    live = load_live(topology)
    hosts = []
    for name, host in topology.hosts.items():
        state = SHOWN_AS.get(states.get(name, "missing"), states.get(name, "missing"))
        hosts.append({
            "name": name, "router": host.router, "state": state if state in STATES else "absent",
            "addresses": {a.network: {"ipv4": str(a.address) if a.address else None,
                                      "ipv6": str(a.address6) if a.address6 else None} for a in host.attachments},
            "services": [f"{service.kind}:{service.port}" for service in host.services],
            "faults": faults.of(name)})
    return {
        "name": topology.name, "file": str(topology.file), "can_act": can_act,
        "networks": [{"name": name, "subnet": str(network.subnet) if network.subnet else None,
                      "subnet6": str(network.subnet6) if network.subnet6 else None}
                     for name, network in topology.networks.items()],
        "hosts": hosts,
        "impairments": [{"target": str(interface),
                         "values": {name: format_value(name, value) for name, value in impairment.values().items()}}
                        for interface, impairment in effective(topology, live).items()],
        "partitions": live.partitions,
        "checks": [{"name": check.name, "from": check.source or None, "to": check.target, "port": check.port,
                    "protocol": check.protocol, "last": last.get(check.name) or remembered.get(check.name)}
                   for remembered in [_remembered(lab)] for check in lab.checks]}


def _remembered(lab: Lab) -> dict[str, dict[str, Any]]:
    """Each check's result as `labctl check` last wrote it (`graph --status` draws the same):
    whether it passed, and when; its reason is not kept there."""
    path = lab.topology.state_folder / LAST_CHECKS
    try:
        when = os.stat(path).st_mtime
    except OSError:
        return {}
    return {mark.name: {"passed": mark.passed, "reason": "", "time": when, "elapsed_ms": None}
            for mark in last_results(lab.topology)}


def last_from_event(detail: dict[str, Any], passed: bool, when: float) -> dict[str, Any]:
    """A check's `last` from its passed or failed event."""
    elapsed = detail.get("elapsed_ms")
    reason = detail.get("reason")
    return {"passed": passed, "reason": reason if isinstance(reason, str) else "", "time": when,
            "elapsed_ms": float(elapsed) if isinstance(elapsed, (int, float)) and not isinstance(elapsed, bool)
            else None}
