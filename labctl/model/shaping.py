"""Impairments and partitions: what the lab file declares, what live commands changed, and
what each host's network sidecar must therefore apply.

An impairment acts on the packets that *leave* an interface, as tc netem does: a delay of
50ms on network `lan` delays every packet sent onto lan, so a round trip between two lan
hosts grows by 100ms, and one through a single impaired host interface by 50ms.

Targets name interfaces: `NETWORK` (every host's interface on it), `HOST` (all of the
host's interfaces) or `HOST:NETWORK` (one interface). Live changes are kept in the lab's
state folder (live.json) as an ordered list, replayed over what lab.yaml declares, so a
change replaces the fields it names and keeps the rest; `labctl down` forgets them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import LabError
from ..names import state_folder
from .impairment import KINDS, Declared, Impairment, Interface, check_consistent, read_impairment
from .mechanisms import chosen_mechanism
from .targets import resolve_target
from .topology import Topology
from .yamlsource import KeyPath, Source

def parse_impairments(source: Source, raw: Any, topology: Topology) -> list[Declared]:
    """`impairments: {TARGET: {delay: 50ms, loss: 1%}}`. Network targets are applied
    first, so an interface's own entry refines its network's."""
    items = source.named_mapping(raw, ("impairments",), "target", r"^[a-z0-9][a-z0-9_-]*(:[a-z0-9][a-z0-9_-]*)?$")
    declared = []
    for target, body in items.items():
        path: KeyPath = ("impairments", target)
        try:
            interfaces = resolve_target(topology, target)
        except LabError as exc:
            raise source.error(path, str(exc)) from None
        spec = source.mapping(body, path, KINDS)
        impairment = read_impairment(spec, lambda key, message: source.error(path + (key,), message))
        check_consistent(impairment, lambda key, message: source.error(path + (key,), message))
        declared.append(Declared(target, interfaces, impairment))
    return sorted(declared, key=lambda item: ":" in item.target or item.target in topology.hosts)


# -- live state ------------------------------------------------------------------------------

@dataclass
class LiveState:
    """What live commands changed, in order: impairment changes and partitions."""
    changes: list[dict[str, Any]] = field(default_factory=list)   # {target, set} | {target, clear}
    partitions: list[list[list[str]]] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not self.changes and not self.partitions


def live_path(topology: Topology) -> Path:
    return state_folder(topology) / "live.json"


def load_live(topology: Topology) -> LiveState:
    try:
        data = json.loads(live_path(topology).read_text())
    except FileNotFoundError:
        return LiveState()
    except (OSError, ValueError) as exc:
        raise LabError(f"{live_path(topology)}: unreadable live state ({exc}); "
                       "'labctl down' removes it") from None
    return LiveState(data.get("changes", []), data.get("partitions", []))


def save_live(topology: Topology, live: LiveState) -> None:
    path = live_path(topology)
    if live.empty:
        path.unlink(missing_ok=True)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps({"changes": live.changes, "partitions": live.partitions}, indent=1))
    temporary.replace(path)


def forget_live(topology: Topology) -> None:
    live_path(topology).unlink(missing_ok=True)


def effective(topology: Topology, live: LiveState | None = None) -> dict[Interface, Impairment]:
    """Every impaired interface and what it gets: declarations, then live changes in order."""
    state: dict[Interface, Impairment] = {}
    for item in topology.impairments:
        for interface in item.interfaces:
            state[interface] = item.impairment.over(state.get(interface, Impairment()))
    for change in (live.changes if live else []):
        interfaces = resolve_target(topology, change["target"])
        if change.get("clear"):
            for interface in interfaces:
                state.pop(interface, None)
            continue
        update = Impairment(**change["set"])
        for interface in interfaces:
            state[interface] = update.over(state.get(interface, Impairment()))
    return {interface: value for interface, value in sorted(state.items()) if not value.empty}


def blocked(topology: Topology, live: LiveState | None = None) -> dict[str, list[str]]:
    """host -> the addresses it may neither reach nor hear from, for every partition."""
    blocks: dict[str, set[str]] = {}
    for sides in (live.partitions if live else []):
        for side, other in ((sides[0], sides[1]), (sides[1], sides[0])):
            addresses = {str(address) for peer in other for attachment in topology.hosts[peer].attachments
                         for address in attachment.addresses}
            for host in side:
                blocks.setdefault(host, set()).update(addresses)
    return {host: sorted(addresses) for host, addresses in blocks.items()}


def sidecar_specs(topology: Topology, live: LiveState | None = None) -> dict[str, dict[str, Any]]:
    """host -> the spec its network sidecar (services/shaper.py) applies; only hosts with
    something to apply get one."""
    specs: dict[str, dict[str, Any]] = {}
    for interface, impairment in effective(topology, live).items():
        spec = specs.setdefault(interface.host, {"mechanism": chosen_mechanism(), "interfaces": [], "block": []})
        address = str(topology.hosts[interface.host].address_on(interface.network))
        spec["interfaces"].append({"address": address, "network": interface.network, **impairment.values()})
    for host, addresses in blocked(topology, live).items():
        specs.setdefault(host, {"mechanism": chosen_mechanism(), "interfaces": [], "block": []})["block"] = addresses
    return dict(sorted(specs.items()))


# -- live commands ---------------------------------------------------------------------------

def change_impairment(topology: Topology, live: LiveState, target: str, values: dict[str, Any]) -> Impairment:
    """Record `impair TARGET --field value...`; returns what the target's interfaces get."""
    interfaces = resolve_target(topology, target)

    def fail(key: str, message: str) -> LabError:
        return LabError(f"--{key}: {message}")
    update = read_impairment(values, fail)
    for interface in interfaces:
        check_consistent(update.over(effective(topology, live).get(interface, Impairment())), fail)
    live.changes.append({"target": target, "set": update.values()})
    return update


def clear_impairment(topology: Topology, live: LiveState, target: str | None) -> None:
    if target is None:
        live.changes = [{"target": name, "clear": True} for name in topology.networks]
        return
    resolve_target(topology, target)
    live.changes.append({"target": target, "clear": True})


def parse_sides(topology: Topology, words: list[str]) -> list[list[str]]:
    """`A,B -- C` (or `A,B C`) -> [[A, B], [C]], every name a host, no host on both sides."""
    if "--" in words:
        split = words.index("--")
        groups = [words[:split], words[split + 1:]]
    else:
        groups = [[word] for word in words]
    sides = [[name for word in group for name in word.split(",") if name] for group in groups]
    if len(sides) != 2 or not all(sides):
        raise LabError("expected two sets of hosts: labctl partition A,B -- C")
    for name in sides[0] + sides[1]:
        if name not in topology.hosts:
            raise topology.unknown_host(name)
    both = set(sides[0]) & set(sides[1])
    if both:
        raise LabError(f"{', '.join(sorted(both))} cannot be on both sides of a partition")
    return sides
