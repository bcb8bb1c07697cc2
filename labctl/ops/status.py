"""What `labctl status` reports: each host's state, health, addresses, services and
faults, and how the network helpers fare, assembled from the engine and the lab's state."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any

from ..engines.base import Engine, HostState
from ..errors import LabError
from ..render.compose import probe_once, readiness_probe
from ..model.topology import Topology
from .faults import current_faults
from .leftovers import leftovers


@dataclass
class HostRow:
    name: str
    state: str
    health: str | None
    addresses: dict[str, str]
    services: list[str]
    faults: list[str]
    machine: str | None = None
    reason: str = ""


@dataclass
class LabStatus:
    lab: str
    running: bool
    shows_machines: bool             # the engine spreads hosts over machines
    hosts: list[HostRow] = field(default_factory=list)
    helpers: list[HostState] = field(default_factory=list)
    states: list[HostState] = field(default_factory=list)
    faults_by_host: dict[str, list[str]] = field(default_factory=dict)
    leftovers: list[str] = field(default_factory=list)   # what an interrupted run left in force

    @property
    def helpers_ready(self) -> int:
        return sum(state.ready for state in self.helpers)

    @property
    def helpers_failed(self) -> list[str]:
        return [state.name for state in self.helpers if state.failed]

    def as_json(self) -> list[dict[str, Any]]:
        """Every container, as the engine reports it, with each host's faults and its
        addresses of both families on each network."""
        addresses = {row.name: {network: value.split(",") for network, value in row.addresses.items()}
                     for row in self.hosts}
        return [{**asdict(state), "faults": self.faults_by_host.get(state.name, []) if state.role == "host" else [],
                 **({"addresses": addresses.get(state.name, {})} if state.role == "host" else {})}
                for state in self.states]


def _health_now(topology: Topology, engine: Engine, hosts: list[HostState]) -> dict[str, str]:
    """Health where the engine's healthcheck has not run yet (it runs every 30 s), or last
    failed (it may have while the host was paused): the host's probe, run once now."""
    def probe(state: HostState) -> tuple[str, str]:
        test = readiness_probe(topology.hosts[state.name])
        if test is None:
            return state.name, state.health or "-"
        try:
            code = engine.exec(topology, state.name, probe_once(test)).exit_code
        except LabError:
            return state.name, state.health or "-"
        return state.name, "healthy" if code == 0 else state.health or "-"
    starting = [s for s in hosts if s.state == "running" and s.health in ("starting", "unhealthy")]
    if not starting:
        return {}
    with ThreadPoolExecutor(max_workers=8) as pool:
        return dict(pool.map(probe, starting))


def lab_status(topology: Topology, engine: Engine) -> LabStatus:
    states = engine.states(topology)
    hosts = [state for state in states if state.role == "host" and state.name in topology.hosts]
    faults = current_faults(topology, engine, [s.name for s in hosts if s.state == "running"])
    status = LabStatus(topology.name, bool(states), not topology.traits.bridges, states=states,
                       helpers=[state for state in states if state.role != "host"],
                       faults_by_host={state.name: faults.of(state.name) for state in hosts},
                       leftovers=leftovers(topology))
    # Where the engine assigns addresses, only running tasks have them: ask it.
    assigned = engine.addresses(topology) if topology.traits.assigns_addresses else None
    health = _health_now(topology, engine, hosts)
    for state in hosts:
        host = topology.hosts[state.name]
        if assigned is not None:
            addresses = dict(sorted(assigned.get(state.name, {}).items()))
        else:
            addresses = {a.network: ",".join(str(address) for address in a.addresses) for a in host.attachments}
        services = (["router"] if host.router else []) + [f"{s.kind}:{s.port}" for s in host.services]
        status.hosts.append(HostRow(state.name, state.state, health.get(state.name, state.health), addresses, services,
                                    faults.of(state.name), state.machine, state.reason))
    for name in sorted(set(topology.hosts) - {state.name for state in hosts}):
        status.hosts.append(HostRow(name, "missing", None, {}, [], []))
    return status
