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
import os
from dataclasses import dataclass, field, fields, replace
from typing import Any, Callable

from .errors import LabError
from .topology import Topology
from .yamlsource import KeyPath, Source, describe, parse_duration, parse_rate, parse_share

KINDS = {"delay": "duration", "jitter": "duration", "loss": "share", "rate": "rate",
         "duplicate": "share", "corrupt": "share", "reorder": "share"}
MECHANISMS = ("auto", "netem", "fallback")
MECHANISM_VARIABLE = "LABCTL_SHAPER"


@dataclass(frozen=True, order=True)
class Interface:
    host: str
    network: str

    def __str__(self) -> str:
        return f"{self.host}:{self.network}"


@dataclass(frozen=True)
class Impairment:
    """Seconds, fractions and bits per second; None where nothing is asked."""
    delay: float | None = None
    jitter: float | None = None
    loss: float | None = None
    rate: float | None = None
    duplicate: float | None = None
    corrupt: float | None = None
    reorder: float | None = None

    def over(self, base: Impairment) -> Impairment:
        """This impairment's fields laid over `base`'s."""
        return replace(base, **{name: value for name, value in self.values().items()})

    def values(self) -> dict[str, float]:
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}

    @property
    def empty(self) -> bool:
        return not any(self.values().values())

    def describe(self) -> str:
        return " ".join(f"{name} {format_value(name, value)}" for name, value in self.values().items()
                        if value) or "none"


def format_value(name: str, value: float) -> str:
    kind = KINDS[name]
    if kind == "duration":
        return f"{value * 1000:g}ms"
    if kind == "share":
        return f"{value * 100:g}%"
    for unit, size in (("gbit", 1e9), ("mbit", 1e6), ("kbit", 1e3)):
        if value >= size:
            return f"{value / size:g}{unit}"
    return f"{value:g}bit"


def read_impairment(raw: dict[str, Any], fail: Callable[[str, str], Exception]) -> Impairment:
    """Build an Impairment from text values (lab file or command line); `fail(key, message)`
    makes the error that names where the value came from."""
    values: dict[str, float] = {}
    for key, value in raw.items():
        kind = KINDS.get(key)
        if kind is None:
            raise fail(key, f"unknown impairment '{key}'; expected one of: " + ", ".join(KINDS))
        parsed = {"duration": parse_duration, "share": parse_share, "rate": parse_rate}[kind](value)
        if parsed is None:
            example = {"duration": "80ms", "share": "5%", "rate": "10mbit"}[kind]
            raise fail(key, f"expected a {kind} such as {example}, got {describe(value)}")
        values[key] = parsed
    return Impairment(**values)


def check_consistent(impairment: Impairment, fail: Callable[[str, str], Exception]) -> None:
    if impairment.reorder and not impairment.delay:
        raise fail("reorder", "reorder needs a delay: reordered packets are the ones that skip it")
    if impairment.jitter and impairment.jitter > (impairment.delay or 0):
        raise fail("jitter", "jitter larger than the delay would need negative delays")


def resolve_target(topology: Topology, target: str) -> list[Interface]:
    """The interfaces a target names; a LabError lists what exists when it names nothing."""
    host, _, network = target.partition(":")
    if network:
        if host not in topology.hosts:
            raise topology.unknown_host(host)
        if network not in topology.hosts[host].networks:
            raise LabError(f"host '{host}' is not on network '{network}'; it is on: "
                           + ", ".join(topology.hosts[host].networks))
        return [Interface(host, network)]
    is_host, is_network = target in topology.hosts, target in topology.networks
    if is_host and is_network:
        raise LabError(f"'{target}' is both a host and a network; write HOST:NETWORK")
    if is_host:
        return [Interface(target, network) for network in topology.hosts[target].networks]
    if is_network:
        return [Interface(host.name, target) for host in topology.hosts.values() if target in host.networks]
    raise LabError(f"'{target}' is neither a host nor a network of lab '{topology.name}'; "
                   f"write NETWORK, HOST or HOST:NETWORK")


@dataclass(frozen=True)
class Declared:
    target: str
    interfaces: list[Interface]
    impairment: Impairment


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


def live_path(topology: Topology):
    return topology.state_folder / "live.json"


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
            addresses = {str(topology.hosts[peer].address_on(network))
                         for peer in other for network in topology.hosts[peer].networks}
            for host in side:
                blocks.setdefault(host, set()).update(addresses)
    return {host: sorted(addresses) for host, addresses in blocks.items()}


def mechanism() -> str:
    chosen = os.environ.get(MECHANISM_VARIABLE, "auto")
    if chosen not in MECHANISMS:
        raise LabError(f"{MECHANISM_VARIABLE}={chosen}: expected one of " + ", ".join(MECHANISMS))
    return chosen


def sidecar_specs(topology: Topology, live: LiveState | None = None) -> dict[str, dict[str, Any]]:
    """host -> the spec its network sidecar (services/shaper.py) applies; only hosts with
    something to apply get one."""
    specs: dict[str, dict[str, Any]] = {}
    for interface, impairment in effective(topology, live).items():
        spec = specs.setdefault(interface.host, {"mechanism": mechanism(), "interfaces": [], "block": []})
        address = str(topology.hosts[interface.host].address_on(interface.network))
        spec["interfaces"].append({"address": address, "network": interface.network, **impairment.values()})
    for host, addresses in blocked(topology, live).items():
        specs.setdefault(host, {"mechanism": mechanism(), "interfaces": [], "block": []})["block"] = addresses
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
