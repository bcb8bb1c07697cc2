"""What `labctl status` reports: each host's state, health, addresses, services and
faults, and how the network helpers fare, assembled from the engine and the lab's state."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any

from ..engines.base import Engine, ExecResult, HostState
from ..errors import LabError
from ..render.compose import probe_once, readiness_probe
from ..model.topology import Host, Topology
from .faults import current_faults
from .leftovers import leftovers


# How long a host's probe may take when `status` asks (the old healthchecks' own bound),
# and how much of what it says is kept: one line of it is the reason shown.
PROBE_SECONDS = 5.0
PROBE_OUTPUT = 4096


@dataclass
class HostRow:
    name: str
    state: str
    health: str | None               # healthy | unhealthy | None: no probe to ask, or not running
    addresses: dict[str, str]
    services: list[str]
    faults: list[str]
    machine: str | None = None
    reason: str = ""
    health_reason: str = ""          # why it is unhealthy, in the probe's words where it said any


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
        rows = {row.name: row for row in self.hosts}
        return [{**asdict(state), "faults": self.faults_by_host.get(state.name, []) if state.role == "host" else [],
                 **({"addresses": addresses.get(state.name, {}), "health": rows[state.name].health,
                     "health_reason": rows[state.name].health_reason}
                    if state.role == "host" and state.name in rows else {})}
                for state in self.states]


@dataclass(frozen=True)
class Health:
    word: str | None      # healthy | unhealthy | None (nothing to ask)
    reason: str = ""


def host_health(topology: Topology, engine: Engine, hosts: list[HostState]) -> dict[str, Health]:
    """Each running host's health, learned now: the probe `up` waited on (its `ready:`, or
    a port probe of its built-in servers), run once in it, in parallel. Nothing runs in a
    host between two asks: no container declares a healthcheck. A host with no probe (no
    program, or one with nothing to say it is ready) has no health to tell."""
    def probe(state: HostState) -> tuple[str, Health]:
        host = topology.hosts[state.name]
        test = readiness_probe(host)
        if test is None:
            return state.name, Health(None)
        try:
            result, ended = engine.exec_bounded(topology, state.name, probe_once(test), PROBE_OUTPUT, PROBE_SECONDS)
        except LabError as exc:
            return state.name, Health("unhealthy", f"its probe could not run: {exc}")
        if not ended:
            return state.name, Health("unhealthy", f"its probe did not answer within {PROBE_SECONDS:.0f}s")
        if result.exit_code == 0:
            return state.name, Health("healthy")
        return state.name, Health("unhealthy", _probe_said(host, result))
    running = [state for state in hosts if state.state == "running"]
    if not running:
        return {}
    with ThreadPoolExecutor(max_workers=min(16, len(running))) as pool:
        return dict(pool.map(probe, running))


def _probe_said(host: Host, result: ExecResult) -> str:
    """Why a probe failed, in its own last line where it said one."""
    if host.ready and host.ready.tcp_port:   # nc says nothing; its fallback's words would mislead
        return f"nothing accepts connections on port {host.ready.tcp_port}"
    lines = (result.stderr or result.stdout).decode("utf-8", "replace").strip().splitlines()
    if lines:
        return lines[-1]
    what = "`" + host.ready.command + "`" if host.ready and host.ready.command else "its probe"
    return f"{what} exited with code {result.exit_code}"


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
    health = host_health(topology, engine, hosts)
    for state in hosts:
        host = topology.hosts[state.name]
        if assigned is not None:
            addresses = dict(sorted(assigned.get(state.name, {}).items()))
        else:
            addresses = {a.network: ",".join(str(address) for address in a.addresses) for a in host.attachments}
        services = (["router"] if host.router else []) + [f"{s.kind}:{s.port}" for s in host.services]
        found = health.get(state.name, Health(None))
        status.hosts.append(HostRow(state.name, state.state, found.word, addresses, services,
                                    faults.of(state.name), state.machine, state.reason, found.reason))
    for name in sorted(set(topology.hosts) - {state.name for state in hosts}):
        status.hosts.append(HostRow(name, "missing", None, {}, [], []))
    return status
