"""Addresses and routes: fill in automatic addresses, reject clashes, and work out how
every host reaches every network through the lab's routers."""

from __future__ import annotations

from collections import deque
from ipaddress import IPv4Address, IPv4Network

from .topology import Host, Route, Topology


def resolve_addresses(topology: Topology) -> None:
    """Validate static addresses, then give each `auto` attachment the lowest free address."""
    taken: dict[str, dict[IPv4Address, str]] = {name: {} for name in topology.networks}
    for host in topology.hosts.values():
        for attachment in host.attachments:
            if attachment.address is None:
                continue
            network = topology.networks[attachment.network]
            address = attachment.address
            path = attachment.key_path
            if address not in network.subnet:
                raise topology.error(path, f"address {address} is outside network "
                                     f"'{network.name}' ({network.subnet})")
            if address in (network.subnet.network_address, network.subnet.broadcast_address):
                raise topology.error(path, f"address {address} is the network or broadcast "
                                     f"address of {network.subnet}")
            if address == network.gateway:
                raise topology.error(path, f"address {address} is reserved for Docker's bridge "
                                     f"on '{network.name}'; use another")
            owner = taken[network.name].get(address)
            if owner is not None:
                raise topology.error(path, f"duplicate address {address}: host '{owner}' "
                                     f"already has it on '{network.name}'")
            taken[network.name][address] = host.name
    for host in topology.hosts.values():
        for attachment in host.attachments:
            if attachment.address is not None:
                continue
            network = topology.networks[attachment.network]
            free = (address for address in network.subnet.hosts()
                    if address != network.gateway and address not in taken[network.name])
            address = next(free, None)
            if address is None:
                raise topology.error(attachment.key_path,
                                     f"no free address left on '{network.name}' ({network.subnet})")
            attachment.address = address
            taken[network.name][address] = host.name
    for host in topology.hosts.values():
        for index, route in enumerate(host.routes):
            if not any(route.via in topology.networks[n].subnet for n in host.networks):
                raise topology.error(("hosts", host.name, "routes", index, "via"),
                                     f"gateway {route.via} is not on any network of '{host.name}'")


def _router_graph(topology: Topology) -> dict[str, list[tuple[str, Host]]]:
    """network -> [(neighbouring network, router joining them)]."""
    graph: dict[str, list[tuple[str, Host]]] = {name: [] for name in topology.networks}
    for host in topology.hosts.values():
        if not host.router:
            continue
        for here in host.networks:
            for there in host.networks:
                if here != there:
                    graph[here].append((there, host))
    return graph


def _first_hops(topology: Topology, host: Host) -> dict[str, tuple[Host, str]]:
    """For every network `host` is not on: the first router on the shortest path through
    the lab's routers, and the network `host` shares with that router."""
    graph = _router_graph(topology)
    own = set(host.networks)
    # Breadth-first from all of the host's networks at once; remember the first hop.
    first_hop: dict[str, tuple[Host, str]] = {}
    queue: deque[str] = deque()
    for network in host.networks:
        for neighbour, router in graph[network]:
            if router is host or neighbour in own or neighbour in first_hop:
                continue
            first_hop[neighbour] = (router, network)
            queue.append(neighbour)
    while queue:
        network = queue.popleft()
        for neighbour, _router in graph[network]:
            if neighbour in own or neighbour in first_hop:
                continue
            first_hop[neighbour] = first_hop[network]
            queue.append(neighbour)
    return first_hop


def computed_routes(topology: Topology, host: Host) -> list[Route]:
    """Routes `host` needs to reach every network it is not on: the first router on the
    shortest path through the lab's routers, then any routes the lab declares itself."""
    routes = [Route(topology.networks[name].subnet, router.address_on(shared))
              for name, (router, shared) in _first_hops(topology, host).items()]
    declared = {route.destination for route in host.routes}
    return [route for route in routes if route.destination not in declared] + list(host.routes)


def routes_by_name(topology: Topology, host: Host) -> list[tuple[IPv4Network, str]]:
    """The same routes with each gateway named, not addressed: on a Swarm, addresses are
    known only once the lab runs, and the router's name resolves to the right one there."""
    return [(topology.networks[name].subnet, router.name)
            for name, (router, _shared) in _first_hops(topology, host).items()]


def reachable_networks(topology: Topology, host: Host) -> set[str]:
    return set(host.networks) | {
        name for name, network in topology.networks.items()
        if any(route.destination.overlaps(network.subnet) for route in computed_routes(topology, host))
    }


def address_for(topology: Topology, target: Host, source: Host) -> IPv4Address:
    """The address `source` should use for `target`: on a network they share if any, else on
    a network `source` can route to, else `target`'s first address."""
    for network in target.networks:
        if network in source.networks:
            return target.address_on(network)
    routed = reachable_networks(topology, source)
    for network in target.networks:
        if network in routed:
            return target.address_on(network)
    return target.address_on(target.networks[0])


def hosts_table(topology: Topology, source: Host) -> dict[str, IPv4Address]:
    """Name -> address as `source` sees the other hosts (written into its /etc/hosts)."""
    return {name: address_for(topology, host, source)
            for name, host in topology.hosts.items() if host is not source}



def source_address_toward(topology: Topology, source: Host, destination: IPv4Address) -> IPv4Address:
    """The address a server at `destination` sees when `source` talks to it: the source's
    address on the shared network, else on the network of the route's gateway."""
    for attachment in source.attachments:
        if destination in topology.networks[attachment.network].subnet:
            assert attachment.address is not None
            return attachment.address
    for route in sorted(computed_routes(topology, source), key=lambda r: -r.destination.prefixlen):
        if destination in route.destination:
            for attachment in source.attachments:
                if route.via in topology.networks[attachment.network].subnet:
                    assert attachment.address is not None
                    return attachment.address
    return source.address_on(source.networks[0])


def routers_between(topology: Topology, source: Host, target: Host) -> list[Host]:
    """The lab's routers a packet from `source` to `target` crosses, in order."""
    crossed: list[Host] = []
    here = source
    while not set(here.networks) & set(target.networks):
        hops = _first_hops(topology, here)
        step = next((hops[network] for network in target.networks if network in hops), None)
        if step is None or step[0] in crossed or step[0] is target:
            break
        crossed.append(step[0])
        here = step[0]
    return crossed
