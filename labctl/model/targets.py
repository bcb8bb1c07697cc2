"""What a target on the command line or in the lab file names: `NETWORK` (every host's
interface on it), `HOST` (all of the host's interfaces) or `HOST:NETWORK` (one interface).
Impairments, disconnections and captures read targets the same way, and fail alike."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import LabError
from ..names import bridge_name
from .impairment import Interface
from .topology import Topology


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
class CapturePoint:
    """Where tcpdump listens: in `host`'s namespace (None: the engine's) on `where`."""
    host: str | None
    where: str          # interface name, `any`, or an address whose interface is meant
    label: str


def capture_points(topology: Topology, target: str) -> list[CapturePoint]:
    """A network is its bridge where the engine's networks are bridges on one machine; an
    overlay has no bridge labctl can reach, so there it is every member's interface on it,
    merged into one file."""
    interfaces = resolve_target(topology, target)
    if ":" in target or (not topology.traits.bridges and target not in topology.hosts):
        return [CapturePoint(interface.host,
                             str(topology.hosts[interface.host].address_on(interface.network)),
                             f"{interface.host}:{interface.network}")
                for interface in interfaces]
    if target in topology.hosts:
        return [CapturePoint(target, "any", target)]
    return [CapturePoint(None, bridge_name(topology, target), f"network {target}")]


def capture_label(topology: Topology, target: str) -> str:
    points = capture_points(topology, target)
    return points[0].label if len(points) == 1 else f"network {target} (at {len(points)} interfaces)"
