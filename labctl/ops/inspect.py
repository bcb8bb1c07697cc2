"""`labctl inspect HOST`: what the host's namespace holds now, as its kernel says it:
interfaces with their addresses of both families, routes of both families, and the
processes running. The network is read by a short helper in the host's namespace, so a
host of any image (with no `ip` of its own) can be inspected."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from ..assets import host_tag
from ..engines.base import Engine
from ..errors import LabError
from ..model.topology import Topology

SEPARATOR = "--labctl--"
NETWORK = ["sh", "-c", f"ip -j addr show; echo {SEPARATOR}; ip -j -4 route show; echo {SEPARATOR}; ip -j -6 route show"]
PROCESSES = ["ps", "-eo", "pid,user,rss,args", "--no-headers"]


@dataclass
class Interface:
    name: str
    state: str
    addresses: list[str]      # address/prefix, IPv4 and IPv6 (link-local included)


@dataclass
class HostDetails:
    host: str
    interfaces: list[Interface] = field(default_factory=list)
    routes: list[str] = field(default_factory=list)
    processes: list[str] = field(default_factory=list)


def _route(entry: dict) -> str:
    words = [entry.get("dst", "?")]
    if entry.get("gateway"):
        words += ["via", entry["gateway"]]
    if entry.get("dev"):
        words += ["dev", entry["dev"]]
    return " ".join(words)


def inspect_host(topology: Topology, engine: Engine, host: str) -> HostDetails:
    if host not in topology.hosts:
        raise topology.unknown_host(host)
    read = engine.run_in_namespace(topology, host, host_tag(), NETWORK)
    if read.exit_code != 0:
        raise LabError(f"cannot read {host}'s network: {read.last_line}")
    try:
        addresses, routes4, routes6 = (json.loads(part or "[]") for part in read.stdout.decode().split(SEPARATOR))
    except ValueError as exc:
        raise LabError(f"cannot read {host}'s network: {exc}") from None
    details = HostDetails(host)
    for link in addresses:
        details.interfaces.append(Interface(link.get("ifname", "?"), link.get("operstate", "?").lower(), [
            f"{item['local']}/{item['prefixlen']}" for item in link.get("addr_info", []) if "local" in item]))
    details.routes = [_route(entry) for entry in routes4 + routes6]
    processes = engine.exec(topology, host, PROCESSES)
    details.processes = (processes.stdout.decode("utf-8", "replace").splitlines() if processes.exit_code == 0
                         else [f"(ps is not in this host's image: {processes.last_line})"])
    return details
