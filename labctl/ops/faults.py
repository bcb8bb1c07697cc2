"""Live changes to a running lab, each reversible and each made through the engine:
impairments, host faults (stop, start, kill, pause, unpause, restart), disconnections from
a network, and partitions between sets of hosts.

Impairments and partitions are recorded in the lab's live state and rendered into the
Compose document as network sidecars, so the document always describes the lab as it runs.
Host faults and disconnections are Docker's own state, read back from the engine.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ..engines.base import Engine, bind_addresses
from ..errors import LabError
from ..model.addressing import needs_routing_helper
from ..model.impairment import Interface
from ..model.shaping import LiveState, effective, load_live, save_live, sidecar_specs
from ..model.targets import resolve_target
from ..model.topology import Topology
from ..names import host_of, net_service, routes_service
from ..render.lab import render_lab
from .events import publish
from .leftovers import end_run, interrupted_run

Progress = Callable[[str], None]


def apply_live(topology: Topology, engine: Engine, progress: Progress, live: LiveState | None = None) -> None:
    """Save the live state, re-render, and bring every network sidecar in line with it:
    new or changed ones (re)started, obsolete ones stopped, which undoes their work."""
    live = live if live is not None else load_live(topology)
    states = engine.states(topology)
    if not any(state.role == "host" for state in states):
        raise LabError(f"lab '{topology.name}' is not running; run 'labctl up' first")
    save_live(topology, live)
    document = render_lab(topology, live=live)
    wanted = {net_service(host) for host in sidecar_specs(topology, live)}
    current = {state.name for state in states if state.role == "net"}
    running = {state.name for state in states if state.role == "host" and state.state == "running"}
    engine.remove(topology, sorted(current - wanted))
    # A stopped host's sidecar cannot join its namespace; `start` brings it along later.
    engine.update(topology, document, sorted(name for name in wanted
                                              if host_of(name, "net") in running), progress)


def reattach(topology: Topology, engine: Engine, host: str, progress: Progress) -> None:
    """A started, restarted or reconnected host has a fresh network namespace or interface:
    run its route helper and network sidecar again. On a Swarm it may also have a new
    address; then every other host's routes and partitions are brought in line too."""
    moved = _rebind(topology, engine)
    live = load_live(topology)
    document = render_lab(topology, live=live)
    specs = sidecar_specs(topology, live)
    if moved:
        running = {state.name for state in engine.states(topology)
                   if state.role == "host" and state.state == "running"}
        others = [routes_service(name) for name, other in topology.hosts.items()
                  if name != host and name in running and needs_routing_helper(topology, other)]
        others += [net_service(name) for name in specs if name != host and name in running]
        engine.update(topology, document, others, progress)
    wanted = [routes_service(host)] if needs_routing_helper(topology, topology.hosts[host]) else []
    if host in specs:
        wanted.append(net_service(host))
    engine.update(topology, document, wanted, progress, recreate=True)


def _rebind(topology: Topology, engine: Engine) -> bool:
    """Read the engine's addresses again; True if any changed."""
    def snapshot() -> dict[tuple[str, str], str]:
        return {(host.name, attachment.network): str(attachment.address)
                for host in topology.hosts.values() for attachment in host.attachments}
    before = snapshot()
    bind_addresses(topology, engine)
    return snapshot() != before


def host_action(topology: Topology, engine: Engine, host: str, action: str, progress: Progress) -> None:
    engine.act(topology, host, action)  # the engine names an unknown host
    if action in ("start", "restart"):
        engine.wait_ready(topology, progress, only={host})
        reattach(topology, engine, host, progress)
    publish(topology, engine, "fault", action, host)
    if action in ("start", "restart"):
        publish(topology, engine, "host", "ready", host)


def state_of(topology: Topology, engine: Engine, host: str) -> str:
    return next((state.state for state in engine.states(topology)
                 if state.role == "host" and state.name == host), "missing")


def interfaces_of(topology: Topology, target: str) -> list[Interface]:
    interfaces = resolve_target(topology, target)
    if target in topology.networks and ":" not in target:
        raise LabError(f"'{target}' is a network; disconnect names a host or HOST:NETWORK")
    return interfaces


def disconnect(topology: Topology, engine: Engine, target: str) -> list[Interface]:
    done = []
    for interface in interfaces_of(topology, target):
        if interface.network in engine.attached(topology, interface.host):
            engine.disconnect(topology, interface.host, interface.network)
            done.append(interface)
    if done:
        publish(topology, engine, "fault", "disconnected", done[0].host, target=target)
    return done


def reconnect(topology: Topology, engine: Engine, target: str, progress: Progress) -> list[Interface]:
    done = []
    for interface in interfaces_of(topology, target):
        if interface.network not in engine.attached(topology, interface.host):
            engine.connect(topology, interface.host, interface.network)
            done.append(interface)
    for host in sorted({interface.host for interface in done}):
        reattach(topology, engine, host, progress)
    if done:
        publish(topology, engine, "fault", "reconnected", done[0].host, target=target)
    return done


def partition(topology: Topology, engine: Engine, sides: list[list[str]], progress: Progress) -> None:
    live = load_live(topology)
    live.partitions.append(sides)
    apply_live(topology, engine, progress, live)
    publish(topology, engine, "fault", "partitioned", sides=sides)


def heal(topology: Topology, engine: Engine, progress: Progress) -> list[str]:
    """Undo every fault: partitions, disconnections, paused and stopped hosts, and whatever
    an interrupted run left (its impairment changes too). Impairments made on purpose stay;
    'labctl impair --clear' removes those."""
    healed: list[str] = []
    live = load_live(topology)
    interrupted = interrupted_run(topology)
    changed = bool(live.partitions) or (interrupted is not None and bool(live.changes))
    if interrupted is not None and live.changes:
        healed.append(f"impairment changes left by an interrupted run of '{interrupted.get('scenario', '?')}'")
        live.changes = []
    if live.partitions:
        healed += [f"partition {','.join(a)} -- {','.join(b)}" for a, b in live.partitions]
        live.partitions = []
    if changed:
        apply_live(topology, engine, progress, live)
    for state in engine.states(topology):
        if state.role != "host" or state.name not in topology.hosts:
            continue
        if state.state == "paused":
            host_action(topology, engine, state.name, "unpause", progress)
            healed.append(f"unpaused {state.name}")
        elif state.state in ("exited", "created", "dead"):
            host_action(topology, engine, state.name, "start", progress)
            healed.append(f"started {state.name}")
        elif state.state == "running":
            for interface in reconnect(topology, engine, state.name, progress):
                healed.append(f"reconnected {interface}")
    if interrupted is not None:
        end_run(topology)
    publish(topology, engine, "fault", "healed", healed=healed)
    return healed


@dataclass
class Faults:
    """What is bent in a running lab, per host, for `labctl status`."""
    disconnected: dict[str, list[str]]
    partitioned_from: dict[str, list[str]]
    impaired: dict[Interface, str]

    def of(self, host: str) -> list[str]:
        notes = [f"disconnected from {', '.join(self.disconnected[host])}"] if self.disconnected.get(host) else []
        if self.partitioned_from.get(host):
            notes.append(f"partitioned from {', '.join(self.partitioned_from[host])}")
        notes += [f"{interface.network}: {text}" for interface, text in self.impaired.items()
                  if interface.host == host]
        return notes


def current_faults(topology: Topology, engine: Engine, running: list[str]) -> Faults:
    live = load_live(topology)
    disconnected = {}
    for host in running:
        attached = engine.attached(topology, host)
        missing = [network for network in topology.hosts[host].networks if network not in attached]
        if missing:
            disconnected[host] = missing
    partitioned: dict[str, list[str]] = {}
    for sides in live.partitions:
        for side, other in ((sides[0], sides[1]), (sides[1], sides[0])):
            for host in side:
                partitioned.setdefault(host, []).extend(name for name in other
                                                        if name not in partitioned.get(host, []))
    impaired = {interface: value.describe() for interface, value in effective(topology, live).items()}
    return Faults(disconnected, partitioned, impaired)
