"""The lab model: networks, hosts and their services, parsed and validated from lab.yaml.

`parse_topology` reads the networks and hosts of an already parsed lab file; the whole file
(checks and scenarios too) is read by labctl.labfile.load_lab, which this module never imports.
"""

from __future__ import annotations

import ipaddress
import re
import shlex
from dataclasses import dataclass, field, replace
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network
from pathlib import Path
from typing import Any, Literal, overload

from ..errors import LabError, LabFileError
from ..names import RESERVED_PREFIX, project, state_folder
from .impairment import Declared
from .traits import EngineTraits
from .yamlsource import CONTROL, KeyPath, Source, describe, quote

# Built-in services: name -> transport. The programs live in services/labsvc.py.
SERVICE_KINDS: dict[str, str] = {
    "tcp-echo": "tcp",
    "udp-echo": "udp",
    "tls-echo": "tcp",
    "http": "tcp",
    "https": "tcp",
    "raw-listener": "raw",   # its port is the IP protocol number it listens for
    "udp-listener": "udp",   # records datagrams (unicast, broadcast, or its group's) and answers none
    "dns": "udp",            # the lab's authoritative DNS, on UDP and TCP
}
# What each built-in service does, as `labctl schema` tells an editor.
SERVICE_TEXTS: dict[str, str] = {
    "tcp-echo": "a TCP server that echoes every byte until the client closes",
    "udp-echo": "a UDP server that sends each datagram back",
    "tls-echo": "tcp-echo inside TLS, with a certificate signed by the lab's CA",
    "http": "an HTTP server: GET /health answers ok, /echo echoes the body, /headers answers the request "
            "as JSON, /status/N answers status N",
    "https": "the http service over TLS, with the lab's certificate for this host",
    "raw-listener": "records the IP packets of one protocol number that reach the host",
    "udp-listener": "records the datagrams it hears (unicast, broadcast, or its multicast group's) and answers none",
    "dns": "the lab's authoritative DNS for a zone, over UDP and TCP: every host's A, AAAA and PTR "
           "records, and those declared",
}
DNS_RECORD_TYPES = ("CNAME", "TXT", "MX", "SRV")
MULTICAST = IPv4Network("224.0.0.0/4")
MULTICAST6 = IPv6Network("ff00::/8")
# Where a lab's IPv6 subnet may not lie: what the kernel or IPv6 itself reserves.
RESERVED6 = {IPv6Network("ff00::/8"): "multicast", IPv6Network("fe80::/10"): "link-local",
             IPv6Network("::/8"): "reserved (loopback, unspecified and IPv4-mapped)"}
Address = IPv4Address | IPv6Address
Subnet = IPv4Network | IPv6Network
RAW_PROTOCOLS = (1, 254)     # what a raw listener or a raw check may use: not TCP (6) or UDP (17)

NAME_PATTERN = r"^[a-z0-9][a-z0-9-]{0,62}$"
LAB_NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,40}$"

# Limits any lab file is held to, far above what a lab on a few machines runs, so that
# validating one stays quick whatever it declares.
MAX_NETWORKS = 256
MAX_HOSTS = 500
MAX_PATH = 4096             # characters of a path in the lab folder
MAX_PATH_PART = 255         # bytes of one of its names, as Linux allows


@dataclass(frozen=True)
class Network:
    """A network with an IPv4 subnet, an IPv6 subnet, or both (dual stack)."""
    name: str
    subnet: IPv4Network | None
    internal: bool = True
    encrypted: bool = False   # Swarm: IPsec between machines; one machine's bridge needs none
    subnet6: IPv6Network | None = None

    @property
    def subnets(self) -> list[Subnet]:
        return [subnet for subnet in (self.subnet, self.subnet6) if subnet is not None]

    @property
    def families(self) -> tuple[int, ...]:
        return tuple(subnet.version for subnet in self.subnets)

    def subnet_for(self, family: int) -> Subnet | None:
        return self.subnet if family == 4 else self.subnet6

    def gateway_for(self, family: int) -> Address:
        """Docker gives the bridge itself the first address of each subnet; hosts never get it."""
        subnet = self.subnet_for(family)
        assert subnet is not None, f"network {self.name} has no IPv{family} subnet"
        return subnet.network_address + 1

    @property
    def gateway(self) -> IPv4Address:
        assert self.subnet is not None, f"network {self.name} has no IPv4 subnet"
        return self.subnet.network_address + 1

    def holds(self, address: Address) -> bool:
        return any(address in subnet for subnet in self.subnets)


@dataclass
class Attachment:
    network: str
    address: IPv4Address | None   # None until addressing fills in an automatic one
    key_path: KeyPath = ()
    address6: IPv6Address | None = None

    def address_for(self, family: int) -> Address | None:
        return self.address if family == 4 else self.address6

    @property
    def addresses(self) -> list[Address]:
        return [address for address in (self.address, self.address6) if address is not None]


@dataclass(frozen=True)
class Service:
    kind: str
    port: int
    client_cert: str = "none"   # tls-echo and https: none | optional | required (mutual TLS)
    group: str | None = None    # udp-listener: the multicast group it joins
    zone: str | None = None     # dns: the lab's domain
    records: tuple[tuple[str, str, str], ...] = ()   # dns: declared (name, type, value)
    resolver: bool = False      # dns: every host resolves names through it

    @property
    def transport(self) -> str:
        return SERVICE_KINDS[self.kind]

    @property
    def transports(self) -> tuple[str, ...]:
        return ("udp", "tcp") if self.kind == "dns" else (self.transport,)


@dataclass(frozen=True)
class Route:
    destination: Subnet
    via: Address


@dataclass(frozen=True)
class FileMount:
    source: Path      # absolute, inside the lab folder
    target: str       # absolute path in the container
    writable: bool = False


@dataclass(frozen=True)
class Placement:
    """Where a host runs on a Swarm: a named machine, machines with these labels, or, with
    neither, wherever the Swarm spreads it. One machine has no choice, so Compose ignores it."""
    machine: str | None = None
    labels: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Readiness:
    """How a user program says it is ready: a TCP port accepting, or a command exiting 0."""
    tcp_port: int | None = None
    command: str | None = None


@dataclass(frozen=True)
class Limits:
    """What one host may use, so a fork bomb or a runaway allocation in a student's
    program fails that host only, and the lab and its grader keep going."""
    memory: int = 512 << 20     # bytes, swap included
    pids: int = 512             # processes and threads
    cpus: float = 1.0           # of the machine's cores
    disk: int = 1 << 30         # bytes of its writable layer, where the engine can bound it

    def describe(self) -> str:
        return f"memory {self.memory >> 20} MiB, {self.pids} processes, {self.cpus:g} CPUs"


@dataclass
class Host:
    name: str
    attachments: list[Attachment]
    router: bool = False
    # NET_RAW for a host that runs a student's code: off unless the lab says so, since a
    # packet socket writes frames past netfilter (impairments, the resolver's refusal).
    raw_sockets: bool = False
    services: list[Service] = field(default_factory=list)
    image: str | None = None
    build: dict[str, str] | None = None
    command: list[str] | None = None
    files: list[FileMount] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    routes: list[Route] = field(default_factory=list)
    ready: Readiness | None = None
    placement: Placement = field(default_factory=Placement)
    limits: Limits = field(default_factory=Limits)

    @property
    def networks(self) -> list[str]:
        return [attachment.network for attachment in self.attachments]

    def service_at(self, transport: str, port: int) -> Service | None:
        return next((s for s in self.services if transport in s.transports and s.port == port), None)

    def address_on(self, network: str, family: int | None = None) -> Address:
        """The host's address on `network`: in `family`, or IPv4 where the network has it."""
        attachment = self.attachment(network)
        address = attachment.address_for(family) if family else (attachment.address or attachment.address6)
        assert address is not None, f"{self.name} has no IPv{family or ''} address on {network}"
        return address

    def attachment(self, network: str) -> Attachment:
        for attachment in self.attachments:
            if attachment.network == network:
                return attachment
        raise KeyError(f"{self.name} is not on {network}")

    def families_on(self, network: str) -> tuple[int, ...]:
        return tuple(address.version for address in self.attachment(network).addresses)

    @property
    def runs_lab_image(self) -> bool:
        """True when the host runs labctl's own image, so probes can run inside it."""
        return self.image is None and self.build is None


@dataclass
class Topology:
    name: str
    file: Path
    networks: dict[str, Network]
    hosts: dict[str, Host]
    source: Source
    traits: EngineTraits        # what the engine it runs on can do
    impairments: list[Declared] = field(default_factory=list)
    # True once the addresses are the ones the engine gave (a Swarm's), read back after deploy.
    addresses_bound: bool = False

    @property
    def folder(self) -> Path:
        return self.file.parent

    @property
    def engine(self) -> str:
        return self.traits.name

    @property
    def resolver(self) -> tuple[Host, Service] | None:
        """The dns service every host resolves names through, and its host, if the lab has one."""
        return next(((host, service) for host in self.hosts.values() for service in host.services
                     if service.resolver), None)

    @property
    def answering_datagram_ports(self) -> list[int]:
        """Where the lab's answering datagram servers (udp-echo, dns) listen, on any host:
        none of them answers a datagram from those ports, so a spoofed one cannot set two
        ping-ponging (services/svc_udp.py), and the probe never sends from one."""
        return sorted({service.port for host in self.hosts.values() for service in host.services
                       if service.kind in ("udp-echo", "dns")})

    @property
    def needs_fabric(self) -> bool:
        """labctl's rules go into the engine machine's firewall (services/netadmin.py):
        on bridges, always. Every lab bridge carries the machine's own addresses, which no
        lab host may reach; routed traffic must cross the lab's internal bridges (a
        multicast group too, lying outside every subnet); and Docker filters no IPv6 at
        all, so the fabric keeps an internal network's IPv6 inside."""
        return self.traits.bridges

    @property
    def state_folder(self) -> Path:
        return state_folder(self)

    @property
    def project(self) -> str:
        return project(self)

    def error(self, path: KeyPath, message: str) -> LabFileError:
        return self.source.error(path, message)

    def unknown_host(self, name: str) -> LabError:
        return LabError(f"no host {quote(name)} in lab '{self.name}'; hosts: " + ", ".join(self.hosts))


# The keys each mapping of the lab file allows, with what each means (the validator reads
# the keys; `labctl schema` gives editors the texts too).
NETWORK_KEYS = {
    "subnet": "the network's IPv4 subnet, such as 10.10.1.0/24 (/29 or larger)",
    "subnet6": "the network's IPv6 subnet, such as fd00:10:1::/64; with subnet too, the network is dual stack",
    "internal": "true (the default): nothing leaves the lab and nothing from another lab comes in; "
                "false: the network has a way out",
    "encrypted": "on a Swarm: encrypt the traffic between machines (IPsec)",
}
HOST_KEYS = {
    "networks": "the networks the host is on: a list of names, or a mapping of network to its "
                "address (auto, an address, or a list of an IPv4 and an IPv6 one)",
    "router": "forward packets between the host's networks; other hosts route through it",
    "services": "built-in servers the host runs, such as {http: {port: 8080}}",
    "image": "the container image to run instead of labctl's own",
    "build": "a folder in the lab folder with a Dockerfile to build the host's image from, "
             "or {context, dockerfile}",
    "command": "the program the host runs, as text or a list of words",
    "files": "files of the lab folder the host sees: ./local/path:/container/path[:rw]",
    "env": "environment variables of the host's program",
    "routes": "routes of the lab's own, besides those labctl works out through its routers",
    "ready": "how the host's program says it is ready: {tcp: PORT} or {command: TEXT}",
    "placement": "on a Swarm: a machine's name, a mapping of machine labels, or spread",
    "limits": "what the host may use: memory, pids, cpus, disk",
    "raw_sockets": "true gives a host that runs the student's code raw sockets (NET_RAW), for a raw-IP "
                   "exercise; such a host has none unless given",
}
LIMIT_KEYS = {
    "memory": "memory the host may use, swap included, such as 256m (16m to 256g; 512m unless given)",
    "pids": "processes and threads the host may run (512 unless given)",
    "cpus": "of the machine's cores, the host may use, such as 0.5 (1 unless given)",
    "disk": "bytes of its writable layer, such as 2g, where the engine can bound it (1g unless given)",
}
# Every key a built-in service takes, with what it means.
SERVICE_FIELDS = {
    "port": "the port it listens on (53 for dns unless given)",
    "protocol": "the IP protocol number it listens for (1 to 254, not 6 or 17)",
    "client_cert": "whether clients present a certificate: none, optional or required (mutual TLS)",
    "group": "a multicast group it joins, such as 239.1.2.3 or ff15::1:2",
    "zone": "the lab's domain it answers for, such as campus.lab",
    "records": "records of the zone besides the hosts' own: CNAME, TXT, MX and SRV",
    "resolver": "every host of the lab resolves names through this server (its resolv.conf names it)",
}
# Each built-in service's own keys, and those it requires.
SERVICE_KEYS: dict[str, tuple[list[str], list[str]]] = {
    kind: ((["protocol"], ["protocol"]) if kind == "raw-listener" else
           (["port", "zone", "records", "resolver"], ["zone"]) if kind == "dns" else
           (["port", "client_cert"], ["port"]) if kind in ("tls-echo", "https") else
           (["port", "group"], ["port"]) if kind == "udp-listener" else (["port"], ["port"]))
    for kind in SERVICE_KINDS}
RECORD_KEYS = {
    "name": "a name in the zone, such as www, or @ for the zone itself",
    "type": "the record's type: CNAME, TXT, MX or SRV (A, AAAA and PTR come from the hosts)",
    "value": "the record's data, such as web (CNAME), '10 mail' (MX) or '0 5 8080 web' (SRV)",
}
BUILD_KEYS = {
    "context": "the folder to build from, inside the lab folder",
    "dockerfile": "the Dockerfile's name in that folder",
}
ROUTE_KEYS = {
    "to": "the destination subnet, such as 10.20.0.0/16",
    "via": "the gateway's address, on one of the host's networks",
}
READY_KEYS = {
    "tcp": "ready once this port accepts a TCP connection",
    "command": "ready once this command exits 0",
}
MEMORY_UNITS = {"": 1, "b": 1, "k": 1 << 10, "kb": 1000, "kib": 1 << 10, "m": 1 << 20, "mb": 1000 ** 2,
                "mib": 1 << 20, "g": 1 << 30, "gb": 1000 ** 3, "gib": 1 << 30}


def parse_topology(source: Source, top: dict[str, Any], file: Path, traits: EngineTraits) -> Topology:
    """The lab's name, networks and hosts (addresses not yet resolved) from the top mapping."""
    name = source.text(top["name"], ("name",), LAB_NAME_PATTERN,
                       "a lab name of lowercase letters, digits, '-' and '_'")
    networks = _parse_networks(source, top["networks"])
    hosts = _parse_hosts(source, top["hosts"], networks, file.resolve().parent)
    _check_dns_host_names(source, hosts)
    resolvers = [(host.name, index) for host in hosts.values() for index, service in enumerate(host.services)
                 if service.resolver]
    if len(resolvers) > 1:
        host, index = resolvers[1]
        raise source.error(("hosts", host, "services", index, "dns", "resolver"),
                           f"hosts.{resolvers[0][0]} already has the lab's resolver; a lab has one")
    return Topology(name, file.resolve(), networks, hosts, source, traits)


def _parse_networks(source: Source, raw: Any) -> dict[str, Network]:
    items = source.named_mapping(raw, ("networks",), "network")
    if not items:
        raise source.error(("networks",), "expected at least one network")
    if len(items) > MAX_NETWORKS:
        raise source.error(("networks",), f"expected at most {MAX_NETWORKS} networks, got {len(items)}")
    networks: dict[str, Network] = {}
    for name, body in items.items():
        path: KeyPath = ("networks", name)
        spec = source.mapping(body, path, NETWORK_KEYS)
        if "subnet" not in spec and "subnet6" not in spec:
            raise source.error(path, "expected subnet (IPv4, such as 10.10.1.0/24), subnet6 (IPv6, "
                               "such as fd00:10:1::/64), or both")
        subnet = _subnet(source, spec["subnet"], path + ("subnet",), 4) if "subnet" in spec else None
        subnet6 = _subnet(source, spec["subnet6"], path + ("subnet6",), 6) if "subnet6" in spec else None
        for key, mine in (("subnet", subnet), ("subnet6", subnet6)):
            for other in networks.values():
                theirs = other.subnet_for(mine.version) if mine is not None else None
                if mine is not None and theirs is not None and mine.overlaps(theirs):
                    raise source.error(path + (key,), f"subnet {mine} overlaps network "
                                       f"'{other.name}' ({theirs})")
        internal = source.boolean(spec.get("internal", True), path + ("internal",))
        encrypted = source.boolean(spec.get("encrypted", False), path + ("encrypted",))
        networks[name] = Network(name, subnet, internal, encrypted, subnet6)
    return networks


@overload
def _subnet(source: Source, raw: Any, path: KeyPath, family: Literal[4]) -> IPv4Network: ...
@overload
def _subnet(source: Source, raw: Any, path: KeyPath, family: Literal[6]) -> IPv6Network: ...
def _subnet(source: Source, raw: Any, path: KeyPath, family: int) -> IPv4Network | IPv6Network:
    """`subnet` (family 4) or `subnet6` (family 6): a subnet of that family, big enough for
    a lab, outside what IPv6 reserves."""
    key, example, other = ("subnet", "10.10.1.0/24", "subnet6") if family == 4 else \
        ("subnet6", "fd00:10:1::/64", "subnet")
    try:
        subnet = ipaddress.ip_network(str(raw), strict=True)
    except ValueError as exc:
        raise source.error(path, f"expected an IPv{family} subnet such as {example}, got "
                           f"{describe(raw)} ({exc})") from None
    if subnet.version != family:
        raise source.error(path, f"{subnet} is an IPv{subnet.version} subnet: give it as {other}")
    if family == 4 and subnet.prefixlen > 29:
        raise source.error(path, f"expected an IPv4 subnet of /29 or larger, got {subnet}")
    if family == 6 and not 16 <= subnet.prefixlen <= 120:
        raise source.error(path, f"expected an IPv6 subnet from /16 to /120 (/64 is usual), got {subnet}")
    for reserved, what in RESERVED6.items() if family == 6 else ():
        if subnet.overlaps(reserved):
            raise source.error(path, f"{subnet} is {what} ({reserved}); use a unique local subnet "
                               "such as fd00:10:1::/64")
    return subnet


def _parse_hosts(source: Source, raw: Any, networks: dict[str, Network],
                 folder: Path) -> dict[str, Host]:
    items = source.named_mapping(raw, ("hosts",), "host", NAME_PATTERN)
    if not items:
        raise source.error(("hosts",), "expected at least one host")
    if len(items) > MAX_HOSTS:
        raise source.error(("hosts",), f"expected at most {MAX_HOSTS} hosts, got {len(items)}")
    hosts: dict[str, Host] = {}
    for name, body in items.items():
        path: KeyPath = ("hosts", name)
        if name.startswith(RESERVED_PREFIX):
            raise source.error(path, f"host names may not start with '{RESERVED_PREFIX}' "
                               "(reserved for labctl's helpers)")
        spec = source.mapping(body, path, HOST_KEYS, required=["networks"])
        host = Host(
            name=name,
            attachments=_parse_attachments(source, spec["networks"], path + ("networks",), networks),
            router=source.boolean(spec.get("router", False), path + ("router",)),
            raw_sockets=source.boolean(spec.get("raw_sockets", False), path + ("raw_sockets",)),
            services=_parse_services(source, spec.get("services"), path + ("services",)),
            image=(source.text(spec["image"], path + ("image",), hint="(an image name)",
                               single_line=True) if "image" in spec else None),
            build=_parse_build(source, spec.get("build"), path + ("build",), folder),
            command=_parse_command(source, spec.get("command"), path + ("command",)),
            files=_parse_files(source, spec.get("files"), path + ("files",), folder),
            env=_parse_env(source, spec.get("env"), path + ("env",)),
            routes=_parse_routes(source, spec.get("routes"), path + ("routes",)),
            ready=_parse_ready(source, spec.get("ready"), path + ("ready",)),
            placement=_parse_placement(source, spec.get("placement"), path + ("placement",)),
            limits=_parse_limits(source, spec.get("limits"), path + ("limits",)),
        )
        if host.image and host.build:
            raise source.error(path + ("build",), "give either image or build, not both")
        if host.services and host.command:
            raise source.error(path + ("command",), "a host runs built-in services or its own "
                               "command, not both; put the program on a host of its own")
        if host.services and not host.runs_lab_image:
            raise source.error(path + ("services",),
                               "built-in services run on labctl's own image; drop image/build, "
                               "or run your program with command")
        hosts[name] = host
    return hosts


def _parse_attachments(source: Source, raw: Any, path: KeyPath,
                       networks: dict[str, Network]) -> list[Attachment]:
    if isinstance(raw, list):
        pairs = [(source.text(item, path + (index,), hint="(a network name)"), None, path + (index,))
                 for index, item in enumerate(raw)]
    elif isinstance(raw, dict):
        pairs = [(str(name), value, path + (str(name),)) for name, value in raw.items()]
    else:
        raise source.error(path, "expected a mapping of network: address (or auto), "
                           f"or a list of network names, got {describe(raw)}")
    if not pairs:
        raise source.error(path, "expected at least one network")
    attachments: list[Attachment] = []
    for network, value, item_path in pairs:
        if network not in networks:
            raise source.error(item_path, f"unknown network {quote(network)}; the lab declares: "
                               + ", ".join(networks))
        if network in [a.network for a in attachments]:
            raise source.error(item_path, f"network '{network}' is listed twice")
        attachment = Attachment(network, None, item_path)
        values: list[Any] = value if isinstance(value, list) else [] if value in (None, "auto") else [value]
        if not values and isinstance(value, list) or len(values) > 2:
            raise source.error(item_path, "expected an address, 'auto', or a list of an IPv4 and an "
                               f"IPv6 address, got {describe(value)}")
        for index, item in enumerate(values):
            where = item_path + (index,) if isinstance(value, list) else item_path
            if item == "auto":
                continue
            try:
                address = ipaddress.ip_address(str(item))
            except ValueError:
                raise source.error(where, "expected an IPv4 or IPv6 address, or 'auto', got "
                                   + describe(item)) from None
            subnet = networks[network].subnet_for(address.version)
            if subnet is None:
                other = "subnet6" if address.version == 6 else "subnet"
                raise source.error(where, f"{address} is an IPv{address.version} address but network "
                                   f"'{network}' has no {other}")
            if attachment.address_for(address.version) is not None:
                raise source.error(where, f"two IPv{address.version} addresses for '{network}'; "
                                   "give one per family")
            if isinstance(address, IPv4Address):
                attachment.address = address
            else:
                attachment.address6 = address
        attachments.append(attachment)
    return attachments


def _parse_services(source: Source, raw: Any, path: KeyPath) -> list[Service]:
    services: list[Service] = []
    used: dict[tuple[str, int], int] = {}
    for index, item in enumerate(source.sequence(raw, path)):
        item_path = path + (index,)
        if not isinstance(item, dict) or len(item) != 1:
            raise source.error(item_path, "expected one service such as {http: {port: 8080}}; "
                               "kinds: " + ", ".join(SERVICE_KINDS))
        kind, body = next(iter(item.items()))
        if kind not in SERVICE_KINDS:
            raise source.error(item_path + (str(kind),), f"unknown service {quote(kind)}; expected one of: "
                               + ", ".join(SERVICE_KINDS))
        allowed, required = SERVICE_KEYS[kind]
        spec = source.mapping(body, item_path + (kind,), allowed, required=required)
        if kind == "raw-listener":
            port = raw_protocol(source, spec["protocol"], item_path + (kind, "protocol"))
        else:
            port = source.integer(spec.get("port", 53), item_path + (kind, "port"), 1, 65535, "a port")
        client_cert = spec.get("client_cert", "none")
        if client_cert not in ("none", "optional", "required"):
            raise source.error(item_path + (kind, "client_cert"),
                               f"expected none, optional or required, got {describe(client_cert)}")
        group = multicast_group(source, spec["group"], item_path + (kind, "group")) if "group" in spec else None
        dns = _dns_options(source, spec, item_path + (kind,)) if kind == "dns" else {}
        if dns.get("resolver") and port != 53:
            raise source.error(item_path + (kind, "resolver"), "a resolver listens on port 53 "
                               f"(resolv.conf names no port), not {port}")
        service = Service(kind, port, client_cert, group, **dns)
        for key in [(transport, port) for transport in service.transports]:
            _claim(source, used, key, index, item_path + (kind, "protocol" if service.transport == "raw" else "port"))
        services.append(service)
    return services


def _claim(source: Source, used: dict[tuple[str, int], int], key: tuple[str, int], index: int,
           path: KeyPath) -> None:
    """One service per transport and port on a host."""
    if key in used:
        raise source.error(path, f"{key[0]} {'protocol' if key[0] == 'raw' else 'port'} "
                           f"{key[1]} is already used by services[{used[key]}] on this host")
    used[key] = index


LABEL = r"(?:[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9])?)"
MAX_DNS_LABEL = 63    # bytes
MAX_DNS_NAME = 255    # bytes as sent: each label with its length byte, and the root's


def dns_name_problem(name: str) -> str | None:
    """Why the lab's DNS server could not send `name` (dotted; a trailing dot allowed), or
    None: an empty label, a label over 63 bytes, over 255 bytes in all."""
    text = name[:-1] if name.endswith(".") else name
    size = 1
    for label in text.split("."):
        if not label:
            return "it has an empty label (a leading dot, or two dots in a row)"
        try:   # as services/dnszone.py encodes it
            data = label.encode() if label.isascii() else label.encode("idna")
        except UnicodeError:
            return f"label {quote(label)} is not a valid internationalised name"
        if len(data) > MAX_DNS_LABEL:
            return f"label {quote(label)} is {len(data)} bytes; a DNS label has at most {MAX_DNS_LABEL}"
        size += 1 + len(data)
    if size > MAX_DNS_NAME:
        return f"{quote(text)} is {size} bytes as a DNS name; a name has at most {MAX_DNS_NAME}"
    return None


def _dns_options(source: Source, spec: dict[str, Any], path: KeyPath) -> dict[str, Any]:
    """A dns service's zone, declared records and whether it is every host's resolver."""
    zone = source.text(spec["zone"], path + ("zone",), hint="(a domain such as campus.lab)").lower()
    zone = zone[:-1] if zone.endswith(".") else zone
    problem = dns_name_problem(zone)
    if problem or not re.fullmatch(rf"{LABEL}(?:\.{LABEL})*", zone):
        raise source.error(path + ("zone",), f"expected a domain such as campus.lab, got "
                           f"{describe(spec['zone'])}" + (f": {problem}" if problem else ""))
    records = []
    for index, raw in enumerate(source.sequence(spec.get("records", []), path + ("records",))):
        where = path + ("records", index)
        record = source.mapping(raw, where, RECORD_KEYS, required=RECORD_KEYS)
        name = source.text(record["name"], where + ("name",), hint="(a name in the zone, or @)").lower()
        problem = None if name == "@" else dns_name_problem(name) or dns_name_problem(f"{name}.{zone}")
        if problem or (name != "@" and not re.fullmatch(rf"{LABEL}(?:\.{LABEL})*", name)):
            raise source.error(where + ("name",), f"expected a name in the zone such as www (or @ for "
                               f"the zone itself), got {describe(record['name'])}"
                               + (f": {problem}" if problem else ""))
        rtype = str(record["type"]).upper()
        if rtype not in DNS_RECORD_TYPES:
            raise source.error(where + ("type",), f"expected one of {', '.join(DNS_RECORD_TYPES)} (A, AAAA "
                               f"and PTR come from the hosts), got {describe(record['type'])}")
        value = source.text(str(record["value"]) if isinstance(record["value"], int) else record["value"],
                            where + ("value",), single_line=True)
        shapes = {"MX": (r"\d{1,5} \S+", "a preference and a name such as '10 mail'"),
                  "SRV": (r"\d{1,5} \d{1,5} \d{1,5} \S+", "priority, weight, port and a name such as '0 5 8080 web'"),
                  "CNAME": (r"[A-Za-z0-9_.-]+", "a name such as web"),
                  "TXT": (r".{0,1000}", "text of at most 1000 characters")}
        pattern, what = shapes[rtype]
        if not re.fullmatch(pattern, value):
            raise source.error(where + ("value",), f"expected {what}, got {describe(record['value'])}")
        problem = _dns_value_problem(rtype, value, zone)
        if problem:
            raise source.error(where + ("value",), f"expected {what}, got {describe(record['value'])}: {problem}")
        records.append((name, rtype, value))
    resolver = source.boolean(spec["resolver"], path + ("resolver",)) if "resolver" in spec else False
    return {"zone": zone, "records": tuple(records), "resolver": resolver}


def _dns_value_problem(rtype: str, value: str, zone: str) -> str | None:
    """What the DNS server could not send of a CNAME, MX or SRV value, or None: its numbers
    take two bytes each, and its target, relative to the zone unless it holds a dot (as
    services/dnszone.py reads it), must be a DNS name."""
    if rtype not in ("CNAME", "MX", "SRV"):
        return None
    *numbers, target = value.split()
    too_big = [number for number in numbers if int(number) > 65535]
    if too_big:
        return f"{too_big[0]} is over 65535"
    return dns_name_problem(target if "." in target else f"{target}.{zone}")


def _check_dns_host_names(source: Source, hosts: dict[str, Host]) -> None:
    """A dns service answers for every host's name in its zone (and hostmaster's, in its
    SOA): the longest must still be a DNS name."""
    longest = max([*hosts, "hostmaster"], key=len)
    for host in hosts.values():
        for index, service in enumerate(host.services):
            if service.kind != "dns" or service.zone is None:
                continue
            problem = dns_name_problem(f"{longest}.{service.zone}")
            if problem:
                raise source.error(("hosts", host.name, "services", index, "dns", "zone"),
                                   f"expected a zone short enough for every host's name in it: {problem}")


def multicast_group(source: Source, value: Any, path: KeyPath) -> str:
    try:
        group = ipaddress.ip_address(str(value))
    except ValueError:
        raise source.error(path, "expected a multicast group such as 239.1.2.3 or ff15::1:2, got "
                           f"{describe(value)}") from None
    groups = MULTICAST if group.version == 4 else MULTICAST6
    if group not in groups:
        raise source.error(path, f"{group} is not a multicast group: IPv{group.version} groups are in {groups}")
    return str(group)


def raw_protocol(source: Source, value: Any, path: KeyPath) -> int:
    """An IP protocol number for raw IP: 1 to 254, but not TCP's or UDP's (the kernel owns
    those; use a tcp or udp check)."""
    number = source.integer(value, path, *RAW_PROTOCOLS, "an IP protocol number")
    if number in (6, 17):
        raise source.error(path, f"protocol {number} is {'TCP' if number == 6 else 'UDP'}: use a "
                           f"{'tcp' if number == 6 else 'udp'} check; raw IP takes another number "
                           "(253 and 254 are for experiments)")
    return number


def _parse_build(source: Source, raw: Any, path: KeyPath, folder: Path) -> dict[str, str] | None:
    if raw is None:
        return None
    if isinstance(raw, str):
        raw = {"context": raw}
    spec = source.mapping(raw, path, BUILD_KEYS, required=["context"])
    context = _inside_folder(source, spec["context"], path + ("context",), folder)
    if not _probe(source, context, path + ("context",), "is_dir"):
        raise source.error(path + ("context",), f"expected a folder, {quote(spec['context'])} is not one")
    build = {"context": str(context)}
    if "dockerfile" in spec:
        build["dockerfile"] = source.text(spec["dockerfile"], path + ("dockerfile",),
                                          hint="(a file name)", single_line=True)
    return build


def _parse_command(source: Source, raw: Any, path: KeyPath) -> list[str] | None:
    if raw is None:
        return None
    if isinstance(raw, str):
        try:
            words = shlex.split(raw)
        except ValueError as exc:
            raise source.error(path, f"cannot split the command: {exc}") from None
    elif isinstance(raw, list) and raw and all(isinstance(part, (str, int)) for part in raw):
        words = [str(part) for part in raw]
    else:
        raise source.error(path, f"expected a command as text or a list of words, got {describe(raw)}")
    if any("\x00" in word for word in words):
        raise source.error(path, "a command cannot hold a NUL character")
    return words


def _parse_files(source: Source, raw: Any, path: KeyPath, folder: Path) -> list[FileMount]:
    mounts: list[FileMount] = []
    for index, item in enumerate(source.sequence(raw, path)):
        item_path = path + (index,)
        text = source.text(item, item_path, hint="of the form ./local/path:/container/path[:rw]",
                           single_line=True)
        parts = text.split(":")
        if len(parts) not in (2, 3) or (len(parts) == 3 and parts[2] not in ("ro", "rw")):
            raise source.error(item_path, "expected ./local/path:/container/path[:rw], got "
                               + describe(text))
        local = _inside_folder(source, parts[0], item_path, folder)
        if not _probe(source, local, item_path, "exists"):
            raise source.error(item_path, f"{quote(parts[0])} does not exist in the lab folder")
        if not parts[1].startswith("/"):
            raise source.error(item_path, f"the container path must be absolute, got {quote(parts[1])}")
        mounts.append(FileMount(local, parts[1], len(parts) == 3 and parts[2] == "rw"))
    return mounts


def _inside_folder(source: Source, raw: Any, path: KeyPath, folder: Path) -> Path:
    relative = checked_path(source, raw, path)
    try:
        resolved = (folder / relative).resolve()
    except (OSError, ValueError, RuntimeError) as exc:   # RuntimeError: a symlink loop
        raise source.error(path, f"cannot follow {quote(relative)}: {_reason(exc)}") from None
    if resolved != folder and folder not in resolved.parents:
        raise source.error(path, f"{quote(relative)} is outside the lab folder")
    return resolved


def checked_path(source: Source, raw: Any, path: KeyPath) -> str:
    """A path as the lab file gives it: one line, no NUL, no longer than Linux takes."""
    relative = source.text(raw, path, hint="(a path inside the lab folder)", single_line=True)
    if len(relative) > MAX_PATH or any(len(part.encode("utf-8", "surrogatepass")) > MAX_PATH_PART
                                       for part in relative.split("/")):
        raise source.error(path, f"the path {quote(relative)} is too long (at most {MAX_PATH} "
                           f"characters, {MAX_PATH_PART} bytes a name)")
    return relative


def _probe(source: Source, path: Path, key_path: KeyPath, test: str) -> bool:
    """`path.exists()` or `path.is_dir()`, with what stops the test said on one line."""
    try:
        return getattr(path, test)()
    except (OSError, ValueError) as exc:
        raise source.error(key_path, f"cannot look at {quote(path.name)}: {_reason(exc)}") from None


def _reason(exc: BaseException) -> str:
    return (exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)) or type(exc).__name__


def _parse_env(source: Source, raw: Any, path: KeyPath) -> dict[str, str]:
    spec = source.named_mapping(raw, path, "variable", r"^[A-Za-z_][A-Za-z0-9_]*$")
    env: dict[str, str] = {}
    for key, value in spec.items():
        if isinstance(value, (dict, list)) or value is None:
            raise source.error(path + (key,), f"expected a text or number value, got {describe(value)}")
        env[key] = str(value).lower() if isinstance(value, bool) else str(value)
        if "\x00" in env[key]:
            raise source.error(path + (key,), "an environment value cannot hold a NUL character")
    return env


def _parse_routes(source: Source, raw: Any, path: KeyPath) -> list[Route]:
    routes: list[Route] = []
    for index, item in enumerate(source.sequence(raw, path)):
        item_path = path + (index,)
        spec = source.mapping(item, item_path, ROUTE_KEYS, required=ROUTE_KEYS)
        try:
            destination = ipaddress.ip_network(str(spec["to"]), strict=False)
        except ValueError:
            raise source.error(item_path + ("to",), "expected an IPv4 or IPv6 subnet, got "
                               + describe(spec["to"])) from None
        try:
            via = ipaddress.ip_address(str(spec["via"]))
        except ValueError:
            raise source.error(item_path + ("via",), "expected an IPv4 or IPv6 address, got "
                               + describe(spec["via"])) from None
        if via.version != destination.version:
            raise source.error(item_path + ("via",), f"{via} is IPv{via.version} but the route to "
                               f"{destination} is IPv{destination.version}")
        routes.append(Route(destination, via))
    return routes


def _parse_placement(source: Source, raw: Any, path: KeyPath) -> Placement:
    if raw is None or raw == "spread":
        return Placement()
    if isinstance(raw, str):
        return Placement(machine=source.text(raw, path, NAME_PATTERN, "a machine name"))
    if isinstance(raw, dict) and raw:
        labels = []
        for key, value in raw.items():
            source.text(str(key), path + (str(key),), r"^[a-z0-9][a-z0-9._-]*$", "a label name")
            if isinstance(value, (dict, list)) or value is None or CONTROL.search(str(value)):
                raise source.error(path + (str(key),), f"expected a label value on one line, got {describe(value)}")
            labels.append((str(key), str(value)))
        return Placement(labels=tuple(labels))
    raise source.error(path, "expected a machine name, a mapping of machine labels such as "
                       f"{{zone: a}}, or spread; got {describe(raw)}")


def _parse_limits(source: Source, raw: Any, path: KeyPath) -> Limits:
    """`limits: {memory: 256m, pids: 128, cpus: 0.5, disk: 2g}`; what is not said keeps its
    default."""
    if raw is None:
        return Limits()
    spec = source.mapping(raw, path, LIMIT_KEYS)
    limits = Limits()
    if "memory" in spec:
        limits = replace(limits, memory=_size(source, spec["memory"], path + ("memory",), 16 << 20, 256 << 30,
                                             "16m to 256g"))
    if "disk" in spec:
        limits = replace(limits, disk=_size(source, spec["disk"], path + ("disk",), 64 << 20, 1 << 40, "64m to 1024g"))
    if "pids" in spec:
        limits = replace(limits, pids=source.integer(spec["pids"], path + ("pids",), 16, 1 << 20, "a process count"))
    if "cpus" in spec:
        cpus = spec["cpus"]
        if isinstance(cpus, bool) or not isinstance(cpus, (int, float)) or not 0.01 <= cpus <= 1024:
            raise source.error(path + ("cpus",), f"expected a number of cores from 0.01 to 1024, got {describe(cpus)}")
        limits = replace(limits, cpus=float(cpus))
    return limits


def _size(source: Source, value: Any, path: KeyPath, least: int, most: int, bounds: str) -> int:
    """A size in bytes from `256m`, `1g` or a plain number of bytes, from least to most."""
    match = re.fullmatch(r"\s*(\d{1,12})\s*([a-zA-Z]{0,3})\s*", str(value)) \
        if isinstance(value, (str, int)) and not isinstance(value, bool) else None
    unit = match.group(2).lower() if match else None
    if match is None or unit not in MEMORY_UNITS:
        raise source.error(path, f"expected a size such as 256m or 1g, got {describe(value)}")
    size = int(match.group(1)) * MEMORY_UNITS[unit]
    if not least <= size <= most:
        raise source.error(path, f"expected from {bounds}")
    return size


def _parse_ready(source: Source, raw: Any, path: KeyPath) -> Readiness | None:
    if raw is None:
        return None
    spec = source.mapping(raw, path, READY_KEYS)
    if len(spec) != 1:
        raise source.error(path, "expected exactly one of tcp: PORT or command: TEXT")
    if "tcp" in spec:
        return Readiness(tcp_port=source.integer(spec["tcp"], path + ("tcp",), 1, 65535, "a port"))
    return Readiness(command=source.text(spec["command"], path + ("command",)))
