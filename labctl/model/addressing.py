"""Addresses and routes: fill in automatic addresses, reject clashes, and work out how
every host reaches every network through the lab's routers."""

from __future__ import annotations

from collections import deque
from dataclasses import replace
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network
from typing import overload

from .topology import Address, Attachment, Host, Route, Subnet, Topology


def resolve_addresses(topology: Topology) -> None:
    """Validate static addresses, then give each `auto` attachment the lowest free address
    in each family its network has."""
    taken: dict[tuple[str, int], dict[Address, str]] = {
        (name, family): {} for name, network in topology.networks.items() for family in network.families}
    for host in topology.hosts.values():
        for attachment in host.attachments:
            for address in attachment.addresses:
                _claim_static(topology, taken, host, attachment, address)
    for host in topology.hosts.values():
        for attachment in host.attachments:
            network = topology.networks[attachment.network]
            for family in network.families:
                if attachment.address_for(family) is not None:
                    continue
                subnet = network.subnet_for(family)
                assert subnet is not None
                gateway = network.gateway_for(family)
                used = taken[network.name, family]
                free = next((a for a in subnet.hosts() if a != gateway and a not in used), None)
                if free is None:
                    raise topology.error(attachment.key_path,
                                         f"no free address left on '{network.name}' ({subnet})")
                if isinstance(free, IPv4Address):
                    attachment.address = free
                else:
                    attachment.address6 = free
                used[free] = host.name
    for host in topology.hosts.values():
        for index, route in enumerate(host.routes):
            if not any(topology.networks[n].holds(route.via) for n in host.networks):
                raise topology.error(("hosts", host.name, "routes", index, "via"),
                                     f"gateway {route.via} is not on any network of '{host.name}'")
    _check_resolver_reached(topology)


def _claim_static(topology: Topology, taken: dict[tuple[str, int], dict[Address, str]], host: Host,
                  attachment: Attachment, address: Address) -> None:
    network = topology.networks[attachment.network]
    subnet = network.subnet_for(address.version)
    path = attachment.key_path
    if subnet is None or address not in subnet:
        raise topology.error(path, f"address {address} is outside network '{network.name}' ({subnet})")
    reserved = (subnet.network_address, subnet.broadcast_address) if address.version == 4 else \
        (subnet.network_address,)
    if address in reserved:
        raise topology.error(path, f"address {address} is the network or broadcast address of {subnet}"
                             if address.version == 4 else
                             f"address {address} is the subnet-router anycast address of {subnet}")
    if address == network.gateway_for(address.version):
        raise topology.error(path, f"address {address} is reserved for Docker's bridge "
                             f"on '{network.name}'; use another")
    owner = taken[network.name, address.version].get(address)
    if owner is not None:
        raise topology.error(path, f"duplicate address {address}: host '{owner}' "
                             f"already has it on '{network.name}'")
    taken[network.name, address.version][address] = host.name


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
    """Routes `host` needs to reach every network it is not on, in each family both ends
    have: the first router on the shortest path through the lab's routers, then any routes
    the lab declares itself."""
    routes = [Route(subnet, router.address_on(shared, subnet.version))
              for name, (router, shared) in _first_hops(topology, host).items()
              for subnet in topology.networks[name].subnets
              if subnet.version in router.families_on(shared)]
    declared = {route.destination for route in host.routes}
    return [route for route in routes if route.destination not in declared] + list(host.routes)


def inside_ipv6(topology: Topology, host: Host) -> bool:
    """Whether `host` has IPv6 only on internal networks: then it keeps no IPv6 default
    route (Docker gives it one, to the bridge), so no IPv6 route leads out of the lab."""
    networks = [topology.networks[name] for name in host.networks]
    return any(n.subnet6 for n in networks) and all(n.internal for n in networks if n.subnet6)


def needs_routing_helper(topology: Topology, host: Host) -> bool:
    """Whether a helper sets up `host`'s routing at start: its routes, and on IPv6 its
    default route dropped and the wait for duplicate address detection (until a router's
    link-local addresses pass it, it cannot ask for the neighbours it forwards to); and
    on bridges, Docker's embedded resolver refused to a host with no way out."""
    return bool(computed_routes(topology, host)) or any(topology.networks[name].subnet6 for name in host.networks) \
        or refuses_embedded_dns(topology, host)


def refuses_embedded_dns(topology: Topology, host: Host) -> bool:
    """Whether `host` is refused Docker's resolver at 127.0.0.11: all its networks are
    internal, and that resolver would forward its lookups out of the lab. Only on bridges:
    there names resolve from /etc/hosts or the lab's own DNS, while a Swarm's hosts find
    each other through that very resolver."""
    return topology.traits.bridges and all(topology.networks[name].internal for name in host.networks)


def routes_by_name(topology: Topology, host: Host) -> list[tuple[Subnet, str]]:
    """The same routes with each gateway named, not addressed: on a Swarm, addresses are
    known only once the lab runs, and the router's name resolves to the right one there."""
    return [(subnet, router.name)
            for name, (router, _shared) in _first_hops(topology, host).items()
            for subnet in topology.networks[name].subnets]


def reachable_networks(topology: Topology, host: Host, family: int | None = None) -> set[str]:
    """The networks `host` is on or has a route to (in `family`, or in any)."""
    routes = [route for route in computed_routes(topology, host)
              if family is None or route.destination.version == family]
    return {name for name in host.networks
            if family is None or family in host.families_on(name)} | {
        name for name, network in topology.networks.items()
        if any(route.destination.overlaps(subnet) for route in routes for subnet in network.subnets
               if route.destination.version == subnet.version)
    }


def address_for(topology: Topology, target: Host, source: Host, family: int | None = None) -> Address:
    """The address `source` should use for `target`, in `family` (IPv4 where the network has
    it, when not given): on a network they share if any, else on a network `source` can
    route to, else `target`'s first address."""
    def candidates(networks) -> list[str]:
        return [n for n in target.networks if n in networks
                and (family is None or family in target.families_on(n))]
    shared = candidates(source.networks)
    chosen = shared or candidates(reachable_networks(topology, source, family)) or candidates(target.networks)
    return target.address_on((chosen or target.networks)[0], family)


def hosts_table(topology: Topology, source: Host) -> list[tuple[str, Address]]:
    """(name, address) pairs as `source` sees the other hosts, written into its /etc/hosts:
    an address in each family `source` can reach it by, IPv4 first."""
    table: list[tuple[str, Address]] = []
    for name, host in topology.hosts.items():
        if host is source:
            continue
        families = sorted({f for n in host.networks for f in host.families_on(n)})
        reachable = [f for f in families if _reaches(topology, source, host, f)] or families[:1]
        table += [(name, address_for(topology, host, source, family)) for family in reachable]
    return table


def resolver_addresses(topology: Topology, host: Host) -> list[Address]:
    """The addresses `host` asks the lab's resolver at: one in each family it can reach the
    resolver by, IPv4 first (an IPv6-only host gets its IPv6 one); [] without a resolver."""
    found = topology.resolver
    if found is None:
        return []
    server = found[0]
    families = sorted({f for n in server.networks for f in server.families_on(n)})
    return [address_for(topology, server, host, family) for family in families
            if _reaches(topology, host, server, family)]


def _check_resolver_reached(topology: Topology) -> None:
    """Every host resolves names through the lab's resolver, so each must reach it by a
    family: a host that reaches it by none would name an address it has no way to."""
    found = topology.resolver
    if found is None:
        return
    server, service = found
    where = f"hosts.{server.name}.services[{server.services.index(service)}].dns.resolver"
    for host in topology.hosts.values():
        if not resolver_addresses(topology, host):
            raise topology.error(("hosts", host.name, "networks"),
                                 f"'{host.name}' reaches the lab's resolver ({where}) by neither IPv4 nor "
                                 f"IPv6: put it on a network with '{server.name}', or one a router joins to it")


def _reaches(topology: Topology, source: Host, target: Host, family: int) -> bool:
    networks = reachable_networks(topology, source, family)
    return any(n in networks and family in target.families_on(n) for n in target.networks)


def source_address_toward(topology: Topology, source: Host, destination: Address) -> Address:
    """The address a server at `destination` sees when `source` talks to it: the source's
    address on the shared network, else on the network of the route's gateway."""
    for attachment in source.attachments:
        if topology.networks[attachment.network].holds(destination):
            own = attachment.address_for(destination.version)
            if own is not None:
                return own
    routes = [r for r in computed_routes(topology, source) if r.destination.version == destination.version]
    for route in sorted(routes, key=lambda r: -r.destination.prefixlen):
        if destination in route.destination:
            for attachment in source.attachments:
                own = attachment.address_for(destination.version)
                if own is not None and topology.networks[attachment.network].holds(route.via):
                    return own
    for attachment in source.attachments:
        own = attachment.address_for(destination.version)
        if own is not None:
            return own
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


PRIVATE4 = IPv4Network("10.0.0.0/8")
PRIVATE6 = IPv6Network("fd00::/8")


def relocate(topology: Topology, slot: int) -> None:
    """Move the lab to subnets of its own, so copies of it run side by side
    (labctl grade --parallel): slot N adds 7*N to the second octet of every IPv4 address
    (within 10.0.0.0/8) and N to the second group of every IPv6 one (within fd00::/8),
    subnets, addresses and routes alike."""
    if slot == 0:
        return

    # Each keeps the family: a moved IPv6 address is an IPv6 address.
    @overload
    def moved(address: IPv4Address) -> IPv4Address: ...
    @overload
    def moved(address: IPv6Address) -> IPv6Address: ...
    def moved(address: Address) -> Address:
        if isinstance(address, IPv4Address):
            if address not in PRIVATE4:
                raise topology.error(("networks",), f"grade --parallel moves addresses within {PRIVATE4}; "
                                     f"{address} is outside it")
            second = ((int(address) >> 16 & 0xFF) + 7 * slot) & 0xFF
            return IPv4Address(int(address) & 0xFF00FFFF | second << 16)
        if address not in PRIVATE6:
            raise topology.error(("networks",), f"grade --parallel moves IPv6 addresses within {PRIVATE6}; "
                                 f"{address} is outside it")
        second = ((int(address) >> 96 & 0xFFFF) + slot) & 0xFFFF
        return IPv6Address(int(address) & ~(0xFFFF << 96) | second << 96)

    @overload
    def moved_subnet(subnet: IPv4Network) -> IPv4Network: ...
    @overload
    def moved_subnet(subnet: IPv6Network) -> IPv6Network: ...
    def moved_subnet(subnet: Subnet) -> Subnet:
        return type(subnet)(f"{moved(subnet.network_address)}/{subnet.prefixlen}")

    for name, network in list(topology.networks.items()):
        topology.networks[name] = replace(
            network, subnet=moved_subnet(network.subnet) if network.subnet is not None else None,
            subnet6=moved_subnet(network.subnet6) if network.subnet6 is not None else None)
    for host in topology.hosts.values():
        for attachment in host.attachments:
            attachment.address = moved(attachment.address) if attachment.address is not None else None
            attachment.address6 = moved(attachment.address6) if attachment.address6 is not None else None
        host.routes = [Route(moved_subnet(route.destination), moved(route.via)) for route in host.routes]
