"""The labs bench/floor.py runs, each written two ways from one plan: as a lab.yaml for
labctl, and as the plain Compose file a careful user would write by hand (the floor), with
the exec scripts that check it; bench/engine_limit.py creates the floor's containers
through the engine's API.

A plan is a set of networks, hosts with static addresses (servers run a TCP echo on port
7, clients run nothing, routers forward) and the (client, server) pairs to check.

- `flat_plan(name, n, octet)`: one network 10.<octet>.0.0/24, n/2 servers, n/2 clients,
  every client against every server ((n/2)^2 checks).
- `routed_plan(name, octet)`: networks a, b, c, d (10.<octet>.0-3.0/24) in a chain of two
  routers, a -r1- b -r2- {c, d}; 50 servers and 50 clients spread over the four networks;
  each client against 10 servers on all four networks (500 checks: about a quarter on
  the client's own network, the rest through one router or two).

Standard library and PyYAML only, so a test can load it by path.
"""

from __future__ import annotations

import ipaddress
from collections import deque
from dataclasses import dataclass, field

import yaml

ECHO_PORT = 7
PAYLOAD = "hello\n"


@dataclass
class Host:
    name: str
    role: str                                   # "server", "client" or "router"
    addresses: dict[str, str]                   # network -> address
    routes: list[tuple[str, str]] = field(default_factory=list)   # (subnet, via)


@dataclass
class Plan:
    name: str
    networks: dict[str, str]                    # network -> subnet
    hosts: dict[str, Host]
    checks: list[tuple[str, str]]               # (client, server)
    routed: bool = False

    def of(self, role: str) -> list[Host]:
        return [host for host in self.hosts.values() if host.role == role]

    def address_for(self, client: str, server: str) -> str:
        """The address a client dials: the server's on a network they share, else its first
        (every network is reachable through the routers)."""
        mine, theirs = self.hosts[client].addresses, self.hosts[server].addresses
        for network in theirs:
            if network in mine:
                return theirs[network]
        return next(iter(theirs.values()))

    def targets(self, client: str) -> list[str]:
        return [self.address_for(client, server) for source, server in self.checks if source == client]

    @property
    def size(self) -> int:
        """Servers and clients (routers are not counted)."""
        return len(self.of("server")) + len(self.of("client"))


def _address(subnet: str, index: int) -> str:
    return str(ipaddress.ip_network(subnet)[index])


def flat_plan(name: str, n: int, octet: int) -> Plan:
    half = n // 2
    subnet = f"10.{octet}.0.0/24"
    hosts: dict[str, Host] = {}
    width = len(str(half))
    servers = [f"s{i + 1:0{width}d}" for i in range(half)]
    clients = [f"c{i + 1:0{width}d}" for i in range(half)]
    for index, host in enumerate(servers + clients):
        role = "server" if host.startswith("s") else "client"
        hosts[host] = Host(host, role, {"net": _address(subnet, 2 + index)})
    checks = [(client, server) for client in clients for server in servers]
    return Plan(name, {"net": subnet}, hosts, checks)


ROUTED_NETWORKS = ["a", "b", "c", "d"]
ROUTERS = {"r1": ["a", "b"], "r2": ["b", "c", "d"]}   # a -r1- b -r2- {c, d}


def routed_plan(name: str, octet: int, servers: int = 50, clients: int = 50, per_client: int = 10) -> Plan:
    networks = {net: f"10.{octet}.{index}.0/24" for index, net in enumerate(ROUTED_NETWORKS)}
    hosts: dict[str, Host] = {}
    # Routers take the top of each subnet: r1 .254; r2 .253 on b (shared with r1), .254 elsewhere.
    hosts["r1"] = Host("r1", "router", {"a": _address(networks["a"], 254), "b": _address(networks["b"], 254)})
    hosts["r2"] = Host("r2", "router", {"b": _address(networks["b"], 253), "c": _address(networks["c"], 254),
                                        "d": _address(networks["d"], 254)})
    used = {net: 1 for net in networks}
    server_names = [f"s{i + 1:02d}" for i in range(servers)]
    client_names = [f"c{i + 1:02d}" for i in range(clients)]
    for index, host in enumerate(server_names):
        net = ROUTED_NETWORKS[index % 4]
        used[net] += 1
        hosts[host] = Host(host, "server", {net: _address(networks[net], used[net])})
    for index, host in enumerate(client_names):
        # Shifted by one so that a client's own network is not always its first server's.
        net = ROUTED_NETWORKS[(index + 1) % 4]
        used[net] += 1
        hosts[host] = Host(host, "client", {net: _address(networks[net], used[net])})
    # Client i against servers j*stride + i%stride (j = 0..per_client-1): every server gets the
    # same number of clients, and each client's servers cycle through all four networks.
    stride = servers // per_client
    checks = [(client, server_names[j * stride + index % stride])
              for index, client in enumerate(client_names) for j in range(per_client)]
    plan = Plan(name, networks, hosts, checks, routed=True)
    for host in plan.hosts.values():
        host.routes = _routes(plan, host)
    return plan


def _routes(plan: Plan, host: Host) -> list[tuple[str, str]]:
    """Shortest-path next hops from this host to every network it is not on (what labctl
    works out from `router: true`; the floor sets them by hand)."""
    routers = {h.name: h for h in plan.of("router")}
    first_hop: dict[str, str] = {}
    queue = deque()
    for net in host.addresses:
        first_hop[net] = ""
        queue.append(net)
    while queue:
        net = queue.popleft()
        for router in routers.values():
            if net not in router.addresses or router.name == host.name:
                continue
            for other in router.addresses:
                if other not in first_hop:
                    first_hop[other] = first_hop[net] or router.addresses[net]
                    queue.append(other)
    return [(plan.networks[net], via) for net, via in first_hop.items() if via]


# --- labctl's form -------------------------------------------------------------------------

def labctl_yaml(plan: Plan) -> str:
    networks = {net: {"subnet": subnet} for net, subnet in plan.networks.items()}
    hosts: dict[str, dict] = {}
    for host in plan.hosts.values():
        entry: dict = {"networks": dict(host.addresses)}
        if host.role == "router":
            entry["router"] = True
        if host.role == "server":
            entry["services"] = [{"tcp-echo": {"port": ECHO_PORT}}]
        hosts[host.name] = entry
    checks = [{"name": f"{client}-{server}", "from": client, "to": f"{server}:{ECHO_PORT}",
               "tcp": {"send": PAYLOAD, "expect": PAYLOAD}} for client, server in plan.checks]
    document = {"name": plan.name, "networks": networks, "hosts": hosts, "checks": checks}
    return yaml.safe_dump(document, sort_keys=False, width=200)


# --- the floor: plain Compose and exec scripts ----------------------------------------------

# The servers' echo: standard library, a thread per connection, echoes until the client closes.
ECHO_SERVER = """\
import socketserver
class Echo(socketserver.BaseRequestHandler):
    def handle(self):
        while True:
            data = self.request.recv(65536)
            if not data:
                return
            self.request.sendall(data)
class Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True
    request_queue_size = 1024
Server(("", 7), Echo).serve_forever()
"""

# Run once, in one client: returns when every server's port accepts a connection.
WAIT_SCRIPT = """\
import socket, sys, time
pending, deadline = sys.argv[1:], time.monotonic() + 120
while pending:
    left = []
    for address in pending:
        try:
            socket.create_connection((address, 7), timeout=0.5).close()
        except OSError:
            left.append(address)
    pending = left
    if pending:
        if time.monotonic() > deadline:
            sys.exit("not ready: " + " ".join(pending))
        time.sleep(0.02)
"""

# Run in every client: its exchanges, one after the other; prints a line per failure and
# "N passed". A connection error is retried for a few seconds (routes may still be going in).
EXCHANGE_SCRIPT = """\
import socket, sys, time
passed = 0
for address in sys.argv[1:]:
    deadline, reason = time.monotonic() + 10, ""
    while True:
        try:
            with socket.create_connection((address, 7), timeout=5) as sock:
                sock.sendall(b"hello\\n")
                got = b""
                while len(got) < 6:
                    chunk = sock.recv(64)
                    if not chunk:
                        break
                    got += chunk
            reason = "" if got == b"hello\\n" else f"got {got!r}"
            break
        except OSError as exc:
            reason = str(exc)
            if time.monotonic() > deadline:
                break
            time.sleep(0.02)
    if reason:
        print("FAIL", address, reason)
    else:
        passed += 1
print(passed, "passed")
"""


def floor_compose(plan: Plan, image: str) -> dict:
    """The Compose file a careful user writes: the same image, hosts, addresses and networks;
    `init: true` so every host stops at once on `down`; no healthchecks (one exec waits).
    A routed plan's hosts get NET_ADMIN and put their routes in before their program starts,
    and its networks are not internal: Docker drops traffic routed between internal
    networks, and a hand-written lab would not add DOCKER-USER rules to avoid it."""
    services: dict[str, dict] = {}
    for host in plan.hosts.values():
        if host.role == "server":
            program = ["python3", "-c", ECHO_SERVER]
        else:
            program = ["sleep", "infinity"]
        service: dict = {"image": image, "hostname": host.name, "init": True,
                         "networks": {net: {"ipv4_address": address} for net, address in host.addresses.items()}}
        if host.routes:
            adds = " && ".join(f"ip route add {subnet} via {via}" for subnet, via in host.routes)
            # `$$` is Compose's escape for a literal `$`.
            service["command"] = ["sh", "-c", f'{adds} && exec "$$0" "$$@"', *program]
            service["cap_add"] = ["NET_ADMIN"]
        else:
            service["command"] = program
        if host.role == "router":
            service["sysctls"] = {"net.ipv4.ip_forward": 1}
        services[host.name] = service
    networks = {net: {"driver": "bridge", "internal": not plan.routed,
                      "ipam": {"config": [{"subnet": subnet}]}}
                for net, subnet in plan.networks.items()}
    return {"name": plan.name, "services": services, "networks": networks}


def floor_yaml(plan: Plan, image: str) -> str:
    return yaml.safe_dump(floor_compose(plan, image), sort_keys=False, width=200)
