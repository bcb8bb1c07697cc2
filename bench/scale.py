"""300 hosts on two cores, and a lab spread over machines.

The lab (`scale_lab`): 6 networks in a chain of 5 routers (n1 -r1- n2 -r2- ... -r5- n6);
150 servers, cycling through every built-in kind (tcp-echo, udp-echo, tls-echo, http,
https, udp-listener, raw-listener, dns), and 150 clients, both spread over the six
networks; each client checks 10 servers, every server is checked by 10 clients: 1,500
two-sided checks (each server's transcript must show its own exchange), most of them
through one router or more.

In one run, on one engine:
- the engine's own limit: the same containers (the same image, on the same networks, one
  network namespace each) created and started through the engine's API with 8 threads,
  with no readiness and no checks, then removed;
- labctl: `labctl up`, `check --json` (every check must pass), `down`, each a subprocess as
  a user types it, then a look for anything of the lab still on the engine;
- while labctl's lab is up: each host's memory (its cgroup's resident set) and the engine's
  own share, the containerd-shim processes' (resident, and proportional: they share one
  binary's pages); and throughout, the peak of the machine's one IPv4 neighbour table
  against gc_thresh3, and whether it overflowed (what breaks first at this size: see
  `labctl doctor`).

It prints each figure beside its target: up under 75 s and within 1.2x of the engine's
create+start; all checks pass, both sides; nothing left. It exits 1 when the lab did not
work (an error, a failed or one-sided check, something left); a time over its target is
printed as MISSED, so `make bench` goes on.

What limits `up` here: labctl deploys about twice the engine's containers, since every
routed host gets a one-shot `lc-routes-` helper in its namespace (305 hosts, 305 helpers
and the fabric), each created and started at the engine's own pace.

    .venv/bin/python bench/scale.py [--servers 150 --clients 150] [--octet 210]
    .venv/bin/python bench/scale.py --swarm [--servers 30 --clients 30]

`--swarm` brings up the three-engine Swarm of the multihost tests (labctl.engines.machines),
runs the lab there (up, check, down) and the same lab on this machine's engine, and prints
both up times side by side; the machines are taken down at the end.

Standard library, PyYAML and labctl only. Whatever the bench starts goes down again, on
failure or Ctrl-C too.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

BENCH = Path(__file__).resolve().parent
LABCTL = str(Path(sys.executable).parent / "labctl")
UP_TIMEOUT = 900
THREADS = 8               # the engine's own limit is measured with as many threads as bench/floor.py's
UP_TARGET = 75.0          # seconds, for 300 hosts
RATIO_TARGET = 1.2        # labctl's up against the engine's create+start

NETWORKS = 6
KINDS = ("tcp-echo", "udp-echo", "tls-echo", "http", "https", "udp-listener", "raw-listener", "dns")
PORTS = {"tcp-echo": 7, "udp-echo": 7, "tls-echo": 9443, "http": 8080, "https": 8443,
         "udp-listener": 5000, "dns": 53}
RAW_PROTOCOL = 253


def say(message: str) -> None:
    print(f"  scale: {message}", file=sys.stderr, flush=True)


# --- the lab -----------------------------------------------------------------------------------

@dataclass
class ScaleLab:
    name: str
    networks: dict[str, str]                            # network -> subnet
    hosts: dict[str, dict[str, Any]]                    # as the lab file has them
    checks: list[dict[str, Any]]
    members: dict[str, list[str]] = field(default_factory=dict)   # host -> its networks

    def document(self) -> dict[str, Any]:
        return {"name": self.name,
                "networks": {net: {"subnet": subnet} for net, subnet in self.networks.items()},
                "hosts": self.hosts, "checks": self.checks}

    def yaml(self) -> str:
        return yaml.safe_dump(self.document(), sort_keys=False, width=200)


def _service(kind: str, index: int) -> dict[str, Any]:
    if kind == "raw-listener":
        return {kind: {"protocol": RAW_PROTOCOL}}
    if kind == "dns":
        return {kind: {"zone": f"z{index}.lab", "records": [{"name": "@", "type": "TXT", "value": f"zone {index}"}]}}
    return {kind: {"port": PORTS[kind]}}


def _check(kind: str, index: int, client: str, server: str) -> dict[str, Any]:
    """The check of `client` against `server`, whose one service is `kind`."""
    check: dict[str, Any] = {"name": f"{client}-{server}", "from": client}
    if kind == "raw-listener":
        return check | {"to": server, "raw": {"protocol": RAW_PROTOCOL, "send": {"hex": "00ff"}}}
    check["to"] = f"{server}:{PORTS[kind]}"
    if kind == "tcp-echo":
        check["tcp"] = {"send": "hello\n", "expect": "hello\n"}
    elif kind == "udp-echo":
        check["udp"] = {"send": "hello", "expect": "hello"}
    elif kind == "tls-echo":
        check["tls"] = {"send": "hello\n", "expect": "hello\n"}
    elif kind == "http":
        check["http"] = {"path": "/health", "expect": "ok\n"}
    elif kind == "https":
        check["http"] = {"tls": True, "path": "/health", "expect": "ok\n"}
    elif kind == "udp-listener":
        # It answers nothing: the client's side is that no answer came, the server's that
        # its transcript holds the datagram, from this client.
        check |= {"timeout": "1s", "udp": {"send": "hello", "expect_error": "timeout"},
                  "server": {"from": client, "count": 1}}
    elif kind == "dns":
        check["dns"] = {"name": f"z{index}.lab", "type": "TXT", "expect": f"zone {index}"}
    return check


def scale_lab(name: str, octet: int = 210, servers: int = 150, clients: int = 150,
              per_client: int = 10, networks: int = NETWORKS, static: bool = True) -> ScaleLab:
    """`servers` servers of every kind in turn and `clients` clients over `networks`
    networks in a chain of routers; each client against `per_client` servers, each server
    against as many clients (when servers == clients). `static=False` leaves the addresses
    to the engine (a Swarm assigns them itself)."""
    nets = {f"n{i + 1}": f"10.{octet}.{i}.0/24" for i in range(networks)}
    names = list(nets)
    used = {net: 1 for net in nets}

    def attach(net: str) -> dict[str, str] | list[str]:
        used[net] += 1
        return {net: str(ipaddress.ip_network(nets[net])[used[net]])} if static else [net]

    hosts: dict[str, dict[str, Any]] = {}
    members: dict[str, list[str]] = {}
    for i in range(networks - 1):   # r<i> joins n<i> and n<i+1>, at the top of each subnet
        left, right = names[i], names[i + 1]
        hosts[f"r{i + 1}"] = {"networks": {left: str(ipaddress.ip_network(nets[left])[254]),
                                           right: str(ipaddress.ip_network(nets[right])[253])}
                              if static else [left, right], "router": True}
        members[f"r{i + 1}"] = [left, right]
    width = len(str(max(servers, clients)))
    server_names = [f"s{i + 1:0{width}d}" for i in range(servers)]
    client_names = [f"c{i + 1:0{width}d}" for i in range(clients)]
    kinds = {}
    for index, host in enumerate(server_names):
        net = names[index % networks]
        kinds[host] = KINDS[index % len(KINDS)]
        hosts[host] = {"networks": attach(net), "services": [_service(kinds[host], index)]}
        members[host] = [net]
    for index, host in enumerate(client_names):
        net = names[(index + 1) % networks]   # shifted, so a client's own network is rarely its server's
        hosts[host] = {"networks": attach(net)}
        members[host] = [net]
    # Client i against servers i + j*stride: every server gets the same number of clients,
    # and each client's servers cycle through kinds and networks.
    stride = max(1, servers // per_client)
    checks = []
    for index, client in enumerate(client_names):
        for j in range(per_client):
            server_index = (index + j * stride) % servers
            server = server_names[server_index]
            checks.append(_check(kinds[server], server_index, client, server))
    return ScaleLab(name, nets, hosts, checks, members)


# --- the engine's own limit ------------------------------------------------------------------

def engine_limit(client, lab: ScaleLab, image: str, threads: int = THREADS) -> dict[str, float]:
    """The same hosts as containers, created and started through the API with `threads`
    threads, then removed: no readiness, no checks, no routes."""
    prefix = f"{lab.name}-limit"
    label = {"io.labctl.bench": prefix}
    networks = {}
    figures: dict[str, float] = {}
    try:
        for net, subnet in lab.networks.items():
            ipam = {"Driver": "default", "Config": [{"Subnet": subnet}]}
            networks[net] = client.api.create_network(f"{prefix}-{net}", driver="bridge", ipam=ipam,
                                                      labels=label)["Id"]

        def create_start(host: str) -> str:
            nets = lab.members[host]
            addresses = lab.hosts[host]["networks"]
            config = client.api.create_networking_config(
                {nets[0]: client.api.create_endpoint_config(ipv4_address=addresses[nets[0]])})
            config = {"EndpointsConfig": {networks[nets[0]]: config["EndpointsConfig"][nets[0]]}}
            made = client.api.create_container(image, ["sleep", "infinity"], name=f"{prefix}-{host}",
                                               hostname=host, labels=label, networking_config=config,
                                               host_config=client.api.create_host_config(
                                                   init=True, network_mode=networks[nets[0]]))
            for net in nets[1:]:
                client.api.connect_container_to_network(made["Id"], networks[net],
                                                        ipv4_address=addresses[net])
            client.api.start(made["Id"])
            return made["Id"]

        started = time.perf_counter()
        with ThreadPoolExecutor(threads) as pool:
            ids = list(pool.map(create_start, lab.hosts))
        figures["create+start"] = time.perf_counter() - started
        started = time.perf_counter()
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(lambda ident: client.api.remove_container(ident, force=True), ids))
        figures["remove"] = time.perf_counter() - started
        return figures
    finally:
        _remove_labelled(client, "io.labctl.bench", prefix)


def _remove_labelled(client, key: str, value: str) -> None:
    for container in client.api.containers(all=True, filters={"label": f"{key}={value}"}):
        client.api.remove_container(container["Id"], force=True)
    for network in client.api.networks(filters={"label": f"{key}={value}"}):
        client.api.remove_network(network["Id"])


# --- memory ------------------------------------------------------------------------------------

def _memory_cgroup(pid: int) -> Path | None:
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if "memory" in controllers.split(",") or controllers == "":
            root = Path("/sys/fs/cgroup/memory") if controllers else Path("/sys/fs/cgroup")
            folder = root / path.lstrip("/")
            if folder.is_dir():
                return folder
    return None


def _rss(folder: Path) -> int:
    """A cgroup's resident memory, page cache left out: what its processes hold."""
    stat = dict(line.split() for line in (folder / "memory.stat").read_text().splitlines())
    if "total_rss" in stat:   # cgroup v1
        return int(stat["total_rss"])
    return int(stat.get("anon", 0))


def memory(client, lab_name: str) -> dict[str, float]:
    """MiB per host (median and most, and their sum), and the shims' resident set in all
    and per host."""
    sizes = []
    for container in client.api.containers(filters={"label": f"io.labctl.lab={lab_name}"}):
        pid = client.api.inspect_container(container["Id"])["State"]["Pid"]
        folder = _memory_cgroup(pid) if pid else None
        if folder is not None:
            sizes.append(_rss(folder) / 2**20)
    shims = shims_pss = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if (entry / "comm").read_text().strip().startswith("containerd-shim"):
                status = (entry / "status").read_text()
                shims += int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS")))
                # Their resident sets share one binary's pages: the proportional share counts them once.
                rollup = (entry / "smaps_rollup").read_text()
                shims_pss += int(next(line.split()[1] for line in rollup.splitlines() if line.startswith("Pss:")))
        except (OSError, StopIteration):
            continue
    sizes.sort()
    count = max(1, len(client.api.containers()))   # a shim per running container, the lab's or not
    return {"hosts measured": len(sizes), "median MiB": sizes[len(sizes) // 2] if sizes else 0.0,
            "most MiB": sizes[-1] if sizes else 0.0, "all MiB": sum(sizes),
            "shims MiB": shims / 1024, "shim MiB per container": shims / 1024 / count,
            "shims PSS MiB": shims_pss / 1024, "shim PSS MiB per container": shims_pss / 1024 / count}


# --- the neighbour table ---------------------------------------------------------------------

ARP_CACHE = Path("/proc/net/stat/arp_cache")
GC_THRESH3 = Path("/proc/sys/net/ipv4/neigh/default/gc_thresh3")


def _arp() -> tuple[int, int]:
    """(entries, table overflows so far) of the machine's one IPv4 neighbour table."""
    lines = ARP_CACHE.read_text().split("\n")
    names, values = lines[0].split(), lines[1].split()
    entries = int(values[names.index("entries")], 16)
    fulls = sum(int(line.split()[names.index("table_fulls")], 16) for line in lines[1:] if line.strip())
    return entries, fulls


class Neighbours:
    """The neighbour table's peak while a lab runs, sampled twice a second, and whether it
    overflowed (the kernel then drops packets to new neighbours)."""

    def __init__(self) -> None:
        self.peak, self._fulls = 0, _arp()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(0.5):
            self.peak = max(self.peak, _arp()[0])

    def __enter__(self) -> "Neighbours":
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._thread.join()
        self.overflows = _arp()[1] - self._fulls
        self.limit = int(GC_THRESH3.read_text())


# --- labctl ------------------------------------------------------------------------------------

def _run(argv: list[str], timeout: float, env: dict[str, str] | None = None) -> tuple[float, subprocess.CompletedProcess]:
    started = time.perf_counter()
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired as exc:
        result = subprocess.CompletedProcess(argv, -1, str(exc.stdout or ""), f"hung: {timeout}s passed")
    return time.perf_counter() - started, result


def _tail(result: subprocess.CompletedProcess, lines: int = 6) -> str:
    return " | ".join((result.stderr.strip() or result.stdout.strip()).splitlines()[-lines:])


def run_labctl(lab: ScaleLab, folder: Path, engine: list[str] = (), env: dict[str, str] | None = None,
               while_up=None) -> dict[str, Any]:
    """`labctl up`, `check --json`, `down`; whatever happens, the lab goes down."""
    path = folder / lab.name / "lab.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(lab.yaml())
    base = [LABCTL, *engine, "-f", str(path)]
    figures: dict[str, Any] = {"count": len(lab.checks), "passed": 0}
    downed = False
    try:
        figures["up"], result = _run([*base, "up", "--timeout", str(UP_TIMEOUT)], UP_TIMEOUT + 120, env)
        if result.returncode:
            figures["error"] = f"labctl up exited {result.returncode}: {_tail(result)}"
            return figures
        figures["checks"], result = _run([*base, "check", "--json"], 900, env)
        try:
            report = json.loads(result.stdout)
            figures["passed"] = sum(1 for item in report["checks"] if item["passed"])
            figures["one-sided"] = sum(1 for item in report["checks"] if item["passed"] and not item.get("server"))
            figures["failures"] = [f"{item['name']}: {item.get('reason')}"
                                   for item in report["checks"] if not item["passed"]][:5]
        except (ValueError, KeyError):
            figures["error"] = f"labctl check exited {result.returncode}: {_tail(result)}"
        if while_up is not None:
            figures.update(while_up())
        figures["down"], result = _run([*base, "down"], 900, env)
        downed = result.returncode == 0
        if not downed:
            figures["error"] = f"labctl down exited {result.returncode}: {_tail(result)}"
        return figures
    finally:
        if not downed:
            _run([*base, "down"], 900, env)


def left_on(client, lab_name: str) -> list[str]:
    label = f"io.labctl.lab={lab_name}"
    return ([f"container {c['Names'][0].lstrip('/')}" for c in client.api.containers(all=True, filters={"label": label})]
            + [f"network {n['Name']}" for n in client.api.networks(filters={"label": label})])


# --- the report --------------------------------------------------------------------------------

def _line(what: str, value: str, target: str = "", met: bool | None = None) -> None:
    mark = "" if met is None else ("  ok" if met else "  MISSED")
    print(f"  {what:<34} {value:<22} {target}{mark}", flush=True)


def report_one(title: str, lab: ScaleLab, figures: dict[str, Any], limit: dict[str, float] | None,
               left: list[str], hosts: int) -> bool:
    """Print the figures beside their targets; whether the lab worked (came up, passed every
    check, went down, left nothing). A time over its target is said, not failed on, so
    `make bench` goes on to its next step."""
    print(f"\n{title}: {hosts} hosts + {len(lab.networks) - 1} routers, {len(lab.networks)} networks, "
          f"{len(lab.checks)} checks", flush=True)
    ok = "error" not in figures
    if limit:
        _line("engine create+start (8 threads)", f"{limit['create+start']:.1f} s")
        _line("engine remove", f"{limit['remove']:.1f} s")
    if "up" in figures:
        met = figures["up"] < UP_TARGET if hosts >= 300 else None
        _line("labctl up", f"{figures['up']:.1f} s", f"target < {UP_TARGET:.0f} s" if met is not None else "", met)
        if limit:
            ratio = figures["up"] / limit["create+start"]
            _line("  up / create+start", f"{ratio:.2f}x", f"target <= {RATIO_TARGET}x", ratio <= RATIO_TARGET)
    if "checks" in figures:
        passed = figures["passed"] == figures["count"]
        _line("labctl check", f"{figures['checks']:.1f} s")
        _line("  passed", f"{figures['passed']} of {figures['count']}", "target: all", passed)
        _line("  without their server's side", f"{figures.get('one-sided', '?')}", "target: 0",
              figures.get("one-sided") == 0)
        ok &= passed and figures.get("one-sided") == 0
        for failure in figures.get("failures", []):
            print(f"    {failure}")
    if "down" in figures:
        _line("labctl down", f"{figures['down']:.1f} s")
        if limit:
            _line("  down / remove", f"{figures['down'] / limit['remove']:.2f}x")
    if "median MiB" in figures:
        _line("memory per host (rss)", f"median {figures['median MiB']:.1f} MiB, most {figures['most MiB']:.1f}")
        _line("  all hosts", f"{figures['all MiB']:.0f} MiB over {figures['hosts measured']}")
        _line("engine's shims (rss)", f"{figures['shims MiB']:.0f} MiB, {figures['shim MiB per container']:.1f} per container")
        _line("engine's shims (pss)", f"{figures['shims PSS MiB']:.0f} MiB, "
              f"{figures['shim PSS MiB per container']:.1f} per container")
    if "neighbours" in figures:
        table = figures["neighbours"]
        _line("neighbour table, peak", f"{table.peak} of {table.limit}",
              f"{table.peak / max(1, hosts):.1f} per host; overflows {table.overflows}", table.overflows == 0)
    _line("left on the engine", ", ".join(left) or "nothing", "target: nothing", not left)
    if "error" in figures:
        print(f"    {figures['error']}")
    return ok and not left


def _host_image() -> str:
    from labctl.engines.containers import docker_client
    from labctl.engines.images import ensure_host_image
    client = docker_client()
    return ensure_host_image(client, say)


def one_engine(args) -> bool:
    from labctl.engines.containers import docker_client
    client = docker_client()
    image = _host_image()
    lab = scale_lab(f"bench-scale{args.tag}", args.octet, args.servers, args.clients)
    hosts = args.servers + args.clients
    with tempfile.TemporaryDirectory(prefix="labctl-scale-") as tmp:
        # A first, untimed lab of a few hosts: the image's layers and labctl's imports are warm.
        run_labctl(scale_lab(f"bench-scale-warm{args.tag}", args.octet + 1, 8, 8, 2), Path(tmp))
        limit = engine_limit(client, lab, image)
        say(f"engine: create+start {limit['create+start']:.1f}s, remove {limit['remove']:.1f}s")
        with Neighbours() as neighbours:
            figures = run_labctl(lab, Path(tmp), while_up=lambda: memory(client, lab.name))
    figures["neighbours"] = neighbours
    return report_one("scale, one engine", lab, figures, limit, left_on(client, lab.name), hosts)


SANDBOX = "lc-bench-swarm"
MACHINES_SUBNET = "10.247.0.0/24"


def across_machines(args) -> bool:
    """The lab on the three-engine Swarm of the multihost tests, then the same lab on this
    machine's engine; each after an untimed small lab, so images are already shipped."""
    from labctl.engines import cluster
    from labctl.engines.containers import docker_client
    from labctl.engines.machines import start_machines, stop_machines
    client = docker_client()
    _host_image()
    # A Swarm assigns the addresses: the lab names its networks, not addresses.
    lab = scale_lab(f"bench-swarm{args.tag}", args.octet, args.servers, args.clients, static=False)
    warm = scale_lab(f"bench-swarm-warm{args.tag}", args.octet + 1, 8, 8, 2, static=False)
    hosts = args.servers + args.clients
    with tempfile.TemporaryDirectory(prefix="labctl-swarm-") as tmp:
        folder = Path(tmp)
        stop_machines(client, SANDBOX, say)   # what an interrupted run left
        started = time.perf_counter()
        try:
            file = start_machines(client, SANDBOX, 3, MACHINES_SUBNET, folder / "machines", say)
            cluster.up(cluster.load_cluster(file), say)
            say(f"three machines in a Swarm in {time.perf_counter() - started:.0f}s")
            engine = ["--engine", "swarm", "--cluster", str(file)]
            run_labctl(warm, folder, engine=engine)
            swarm = run_labctl(lab, folder, engine=engine)
        finally:
            stop_machines(client, SANDBOX, say)
        run_labctl(warm, folder)
        local = run_labctl(lab, folder)
    left = [item for item in left_on(client, lab.name) + left_on(client, SANDBOX)]
    ok = report_one("across three machines (Swarm)", lab, swarm, None, [], hosts)
    ok &= report_one("the same lab on one engine", lab, local, None, left, hosts)
    if "up" in swarm and "up" in local:
        _line("up, Swarm against one engine", f"{swarm['up']:.1f} s / {local['up']:.1f} s",
              f"{swarm['up'] / local['up']:.2f}x")
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--servers", type=int, default=150)
    parser.add_argument("--clients", type=int, default=150)
    parser.add_argument("--octet", type=int, default=210, help="subnets 10.OCTET.0-5.0/24 (and OCTET+1 for the warm-up)")
    parser.add_argument("--tag", default="", help="appended to the labs' names")
    parser.add_argument("--swarm", action="store_true", help="the lab across the multihost tests' three engines")
    parser.add_argument("--write", metavar="FILE", help="only write the lab file")
    args = parser.parse_args(argv)
    args.tag = f"-{args.tag}" if args.tag else ""
    if args.write:
        Path(args.write).write_text(scale_lab("scale", args.octet, args.servers, args.clients).yaml())
        return 0
    sys.path.insert(0, str(BENCH.parent))
    ok = across_machines(args) if args.swarm else one_engine(args)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
