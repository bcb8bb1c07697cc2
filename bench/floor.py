"""labctl against the floor and the engine's own limit: the same lab brought up, checked and
taken down by labctl, by what a careful user writes by hand, and by the engine's API with
nothing else, for 10, 30 and 100 hosts, in one run.

- The floor (bench/labs.py): a plain Compose file with the same image, hosts, addresses and
  networks (`init: true` everywhere, so `down` stops every host at once); servers run a
  standard-library echo on port 7; `compose -p NAME -f FILE up -d`, then ONE `docker exec`
  in one client that waits until every server's port accepts, then one `docker exec` per
  client (all at once, as `&` and `wait` in a shell script would) that makes that
  client's exchanges, then `compose down`. It checks the client's side only. For 100
  hosts its networks are not internal (Docker drops traffic routed between internal
  networks), routers get `sysctls: {net.ipv4.ip_forward: 1}`, and every host gets
  `cap_add: [NET_ADMIN]` and adds its routes (`ip route add`) before its program starts.
- labctl: `labctl -f FILE up`, `check` (both sides of every exchange, the default) and
  `down`, each a subprocess, as a user types them.
- The engine's limit (bench/engine_limit.py): the floor's containers and networks created
  and started, then removed, through the engine's API, 8 at a time: no readiness, no
  checks. labctl's up is held against its create+start, its down against its remove, and
  its total (checks included) against its total.

For 10 and 30 hosts (one network, n/2 echo servers, n/2 clients, every client against every
server) the three run in turn, three rounds (the order rotating), and the medians are
printed; for 100 hosts (four networks, two routers, 500 checks) one round. Then, on a
running labctl lab of 30 hosts: its idle CPU over 60 s once it has settled, against the
bare machine over 60 s just before (no lab up), and each host's memory; and each built-in
server under 1000 concurrent connections from a lab host (bench/loadgen.py). A running lab
starts no periodic process (no healthcheck, no poller), so it should cost next to nothing.

Every step is bounded (`bound(n)`, or `--bound`): a step that runs over is recorded as
hung with its bound, what it started is taken down under a bound of its own (naming what
the engine refuses to remove), and the bench goes on with the next step.

Run with `make bench` (or `.venv/bin/python bench/floor.py [--sizes 10,30] [--rounds 3]
[--skip-load] [--skip-idle] [--skip-limit] [--bound S] [--tag T] [--base-octet B]`). Labs
are named bench-*, on 10.200-10.207 (`--base-octet` moves them, `--tag` renames them, to run
beside a network the engine refused to remove; through make: `make bench
BENCH_FLOOR_ARGS="--tag t --base-octet 208"`); whatever the bench started goes down again,
on failure or Ctrl-C too, and anything the engine refuses to remove is named at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import engine_limit  # noqa: E402  (bench/engine_limit.py)
import labs  # noqa: E402  (bench/labs.py)

from labctl.assets import host_tag  # noqa: E402
from labctl.engines.compose import compose_command  # noqa: E402
from labctl.engines.containers import docker_client  # noqa: E402
from labctl.engines.images import ensure_host_image  # noqa: E402
from labctl.names import LAB_LABEL  # noqa: E402

BENCH = Path(__file__).resolve().parent
LABCTL = str(Path(sys.executable).parent / "labctl")
PHASES = ("up", "checks", "down", "total")
LIMIT_PHASES = {"up": "create+start", "down": "remove", "total": "total"}   # labctl's phase -> the limit's
TARGETS = {30: {"up": 1.1, "down": 1.1, "total": 1.25}}                     # labctl / limit (issue 22)
IDLE_SECONDS = 60
IDLE_TARGET = 0.005       # of the machine's cores, above the bare machine
SETTLE_WINDOW = 5         # seconds per sample while waiting for an idle lab to settle
SETTLE_MAX = 60           # ... and at most this long
CLEANUP_BOUND = 180       # a cleanup step (labctl down, compose down) that runs over is given up
LOAD_CONNECTIONS = 1000
LOAD_ROUNDS = 10

# Subnets 10.<base + offset>.x: labctl's lab on the even offset, the floor's (and the
# engine limit's, which runs after or before it, never beside it) on the odd one.
OFFSETS = {10: (0, 1), 30: (2, 3), 100: (4, 5)}
LOAD_OFFSET, WARMUP_OFFSET = 6, 7


def bound(n: int) -> float:
    """How long one step (an up, the checks, a down) of an n-host lab may take before it
    counts as hung: far beyond what a healthy engine needs (N=100 comes up in ~15 s)."""
    return 60 + 3 * n


class Names:
    """Lab names (bench-…, with an optional tag) and subnets (10.<base>-10.<base + 7>):
    `--tag` and `--base-octet` move a run beside what an earlier one could not remove."""

    def __init__(self, tag: str = "", base: int = 200) -> None:
        self.suffix = f"-{tag}" if tag else ""
        self.base = base

    def lab(self, stem: str) -> str:
        return f"bench-{stem}{self.suffix}"

    def octet(self, offset: int) -> int:
        return self.base + offset


def say(message: str) -> None:
    print(f"  bench: {message}", file=sys.stderr, flush=True)


# --- bounded steps -------------------------------------------------------------------------------

class Hung(Exception):
    """A step ran over its bound (and was killed)."""

    def __init__(self, what: str, seconds: float) -> None:
        super().__init__(f"{what} hung: still running after its bound of {seconds:g}s, killed")
        self.what, self.seconds = what, seconds


def run(argv: list[str], timeout: float, stdin: str | None = None, what: str | None = None) -> subprocess.CompletedProcess:
    """Run a command in a session of its own; past `timeout`, kill its whole process group
    (Compose's children, docker exec's) and raise Hung."""
    process = subprocess.Popen(argv, stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = process.communicate(stdin, timeout=timeout)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.communicate()
        raise Hung(what or " ".join(os.path.basename(a) for a in argv[:3]), timeout) from None
    except BaseException:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait()
        raise
    return subprocess.CompletedProcess(argv, process.returncode, out, err)


def bounded_call(function, seconds: float, what: str):
    """`function()` in a thread of its own, waited for at most `seconds` (Hung past it: the
    thread is left to end on its own, each of its engine calls being bounded too)."""
    box: dict = {}

    def body() -> None:
        try:
            box["value"] = function()
        except BaseException as exc:   # handed to the caller
            box["error"] = exc

    thread = threading.Thread(target=body, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        raise Hung(what, seconds)
    if "error" in box:
        raise box["error"]
    return box["value"]


# --- cleanup, whatever happens -------------------------------------------------------------

class Cleanup:
    """What is up, and how to take it down (an argv, or a function): run on the way out, on
    an error, a hang, Ctrl-C or SIGTERM, with further interrupts ignored until it is done.
    Each cleanup has a bound of its own; one that runs over, or leaves something, is noted
    in `problems` with what the engine still holds."""

    def __init__(self) -> None:
        self.pending: dict[str, object] = {}
        self.used: set[str] = set()
        self.problems: list[str] = []

    def add(self, key: str, how) -> None:
        self.pending[key] = how
        self.used.add(key)

    def done(self, key: str) -> None:
        self.pending.pop(key, None)

    def run(self) -> None:
        if not self.pending:
            return
        previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            for key, how in list(self.pending.items()):
                problem = ""
                try:
                    if callable(how):
                        say(f"cleaning up {key}")
                        refused = bounded_call(how, CLEANUP_BOUND, f"cleanup of {key}")
                        problem = "; ".join(refused or [])
                    else:
                        say(f"cleaning up {key}: {' '.join(how)}")
                        result = run(how, CLEANUP_BOUND, what=f"cleanup of {key}")
                        if result.returncode:
                            problem = failed(os.path.basename(how[0]), result)
                except Hung as exc:
                    problem = str(exc)
                except Exception as exc:   # the engine itself: noted, and the bench goes on
                    problem = f"{exc.__class__.__name__}: {exc}"
                self.pending.pop(key, None)
                try:
                    remaining = bounded_call(lambda: left_behind([key]), 60, "listing what is left")
                except Exception as exc:
                    remaining = [f"(could not list: {exc})"]
                if problem or remaining:
                    note = f"{key}: {problem or 'cleanup ran'}" + \
                        (f"; the engine still holds {', '.join(remaining)}" if remaining else "")
                    say(f"CLEANUP PROBLEM {note}")
                    self.problems.append(note)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


CLEANUP = Cleanup()


def left_behind(labs_used) -> list[str]:
    """What is still on the engine of the labs this run started (labctl's by its label,
    the floor's by its Compose project, the engine limit's by its own label)."""
    client = docker_client()
    found = []
    for lab in sorted(labs_used):
        for label in (f"{LAB_LABEL}={lab}", f"com.docker.compose.project={lab}",
                      f"{engine_limit.LIMIT_LABEL}={lab}"):
            found += [f"container {c['Names'][0].lstrip('/')}"
                      for c in client.api.containers(all=True, filters={"label": label})]
            found += [f"network {n['Name']}" for n in client.api.networks(filters={"label": label})]
    return sorted(set(found))


def _terminated(signum, _frame):
    raise KeyboardInterrupt(f"signal {signum}")


def failed(what: str, result: subprocess.CompletedProcess) -> str:
    tail = (result.stderr.strip() or result.stdout.strip()).splitlines()[-6:]
    return f"{what} exited {result.returncode}: " + " | ".join(tail)


# --- the floor -------------------------------------------------------------------------------

def run_floor(plan: labs.Plan, folder: Path, image: str, compose: list[str], parallel: int = 0,
              limit: float | None = None) -> dict:
    """The floor's phases; `parallel` bounds the clients' execs running at once (0: all);
    `limit` bounds each step (default: bound(n))."""
    limit = limit or bound(plan.size)
    path = folder / f"{plan.name}.compose.yaml"
    path.write_text(labs.floor_yaml(plan, image))
    base = [*compose, "-p", plan.name, "-f", str(path)]
    figures: dict = {"passed": 0, "count": len(plan.checks)}
    CLEANUP.add(plan.name, [*base, "down", "--remove-orphans", "-t", "2"])
    try:
        started = time.perf_counter()
        result = run([*base, "up", "-d"], limit, what="compose up -d")
        if result.returncode:
            figures["error"] = failed("compose up -d", result)
            return figures
        clients = [host.name for host in plan.of("client")]
        servers = [plan.address_for(clients[0], host.name) for host in plan.of("server")]
        result = run(["docker", "exec", f"{plan.name}-{clients[0]}-1", "python3", "-c", labs.WAIT_SCRIPT, *servers],
                     max(1.0, limit - (time.perf_counter() - started)), what="compose up (the wait exec)")
        if result.returncode:
            figures["error"] = failed("the wait exec", result)
            return figures
        ready = time.perf_counter()
        figures["up"] = ready - started

        def exchanges(client: str) -> subprocess.CompletedProcess:
            return run(["docker", "exec", f"{plan.name}-{client}-1", "python3", "-c",
                        labs.EXCHANGE_SCRIPT, *plan.targets(client)], limit, what="the checks' execs")

        with ThreadPoolExecutor(max_workers=parallel or len(clients)) as pool:
            results = list(pool.map(exchanges, clients))
        figures["checks"] = time.perf_counter() - ready
        for result in results:
            match = re.search(r"(\d+) passed", result.stdout)
            figures["passed"] += int(match.group(1)) if match else 0
            if result.returncode or "FAIL" in result.stdout:
                figures.setdefault("failures", []).append(
                    (result.stdout + result.stderr).strip().splitlines()[:3])
        down_started = time.perf_counter()
        result = run([*base, "down"], limit, what="compose down")
        if result.returncode:
            figures["error"] = failed("compose down", result)
            return figures
        CLEANUP.done(plan.name)
        figures["down"] = time.perf_counter() - down_started
        figures["total"] = figures["up"] + figures["checks"] + figures["down"]
        return figures
    except Hung as exc:
        figures["error"] = figures["hung"] = str(exc)
        return figures
    finally:
        CLEANUP.run()


# --- labctl ------------------------------------------------------------------------------------

def run_labctl(plan: labs.Plan, folder: Path, while_up=None, limit: float | None = None) -> dict:
    """`labctl up`, `check`, `down` on the plan's lab file, each within `limit` (default:
    bound(n)); `while_up(plan)` runs between `check` and `down`, outside the timings."""
    limit = limit or bound(plan.size)
    lab_folder = folder / plan.name
    lab_folder.mkdir(exist_ok=True)
    path = lab_folder / "lab.yaml"
    path.write_text(labs.labctl_yaml(plan))
    base = [LABCTL, "-f", str(path)]
    figures: dict = {"passed": 0, "count": len(plan.checks)}
    CLEANUP.add(plan.name, [*base, "down"])
    try:
        started = time.perf_counter()
        # labctl's own --timeout a little under the bench's: a slow lab says so itself.
        result = run([*base, "up", "--timeout", str(max(1, int(limit * 0.9)))], limit, what="labctl up")
        figures["up"] = time.perf_counter() - started
        if result.returncode:
            figures["error"] = failed("labctl up", result)
            return figures
        started = time.perf_counter()
        result = run([*base, "check"], limit, what="labctl check")
        figures["checks"] = time.perf_counter() - started
        summary = re.search(r"(\d+) passed, (\d+) failed", result.stdout)
        if summary:
            figures["passed"] = int(summary.group(1))
        if result.returncode or not summary:
            reasons = [line for line in result.stdout.splitlines() if " fail " in f" {line} "][:3]
            figures["failures"] = reasons or [failed("labctl check", result)]
        if while_up:
            figures.update(while_up(plan))
        started = time.perf_counter()
        result = run([*base, "down"], limit, what="labctl down")
        figures["down"] = time.perf_counter() - started
        if result.returncode:
            figures["error"] = failed("labctl down", result)
            return figures
        CLEANUP.done(plan.name)
        figures["total"] = figures["up"] + figures["checks"] + figures["down"]
        return figures
    except Hung as exc:
        figures["error"] = figures["hung"] = str(exc)
        return figures
    finally:
        CLEANUP.run()


# --- the engine's own limit ---------------------------------------------------------------------

def run_limit(plan: labs.Plan, image: str, limit: float | None = None, while_up=None) -> dict:
    """The engine creating, starting and removing the plan's containers (bench/engine_limit.py),
    within `limit` (default: bound(n), and the idle measure's time if `while_up`)."""
    limit = (limit or bound(plan.size)) + (SETTLE_MAX + IDLE_SECONDS if while_up else 0)
    client = docker_client()
    CLEANUP.add(plan.name, lambda: engine_limit.remove_all(docker_client(), plan.name))
    try:
        figures = bounded_call(lambda: engine_limit.limit(client, plan, image, while_up), limit,
                               "the engine's create/remove")
        if "error" not in figures:
            CLEANUP.done(plan.name)
        return figures
    except Hung as exc:
        return {"error": str(exc), "hung": str(exc)}
    except Exception as exc:   # the engine refused: recorded, and the bench goes on
        return {"error": f"{exc.__class__.__name__}: {exc}"}
    finally:
        CLEANUP.run()


# --- cgroups and /proc ---------------------------------------------------------------------------

def _cgroup_path(pid: int, controller: str) -> Path:
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        number, controllers, path = line.split(":", 2)
        if controller in controllers.split(","):
            return Path("/sys/fs/cgroup", controller, path.lstrip("/"))
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        number, controllers, path = line.split(":", 2)
        if number == "0":
            return Path("/sys/fs/cgroup", path.lstrip("/"))
    raise LookupError(f"no {controller} cgroup for pid {pid}")


def cpu_ns(pid: int) -> int:
    folder = _cgroup_path(pid, "cpuacct")
    if (folder / "cpuacct.usage").exists():
        return int((folder / "cpuacct.usage").read_text())
    stat = dict(line.split() for line in (folder / "cpu.stat").read_text().splitlines())
    return int(stat["usage_usec"]) * 1000


def memory_bytes(pid: int) -> int:
    """What `docker stats` shows: usage less the inactive file cache."""
    folder = _cgroup_path(pid, "memory")
    stat = dict(line.split() for line in (folder / "memory.stat").read_text().splitlines())
    if (folder / "memory.usage_in_bytes").exists():
        return int((folder / "memory.usage_in_bytes").read_text()) - int(stat.get("total_inactive_file", 0))
    return int((folder / "memory.current").read_text()) - int(stat.get("inactive_file", 0))


def process_ticks() -> dict[int, tuple[str, int]]:
    """pid -> (name, user + system clock ticks) of every process on the machine."""
    found = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                text = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            fields = text[text.rindex(")") + 2:].split()
            found[int(entry)] = (text[text.index("(") + 1:text.rindex(")")], int(fields[11]) + int(fields[12]))
    return found


ENGINE_PROCESSES = ("dockerd", "containerd", "containerd-shim", "containerd-shim-runc-v2", "runc", "docker-proxy")


def cpu_by_process(before: dict, after: dict, lab_pids: set[int]) -> tuple[float, list[tuple[float, str]]]:
    """Seconds of CPU the engine's own processes used between two samples, and the top
    three other processes outside the lab (noise from whatever else runs)."""
    hertz = os.sysconf("SC_CLK_TCK")
    engine, others = 0.0, []
    for pid, (name, ticks) in after.items():
        used = (ticks - before.get(pid, (name, 0))[1]) / hertz
        if used <= 0 or pid in lab_pids:
            continue
        if name.startswith(ENGINE_PROCESSES):
            engine += used
        else:
            others.append((used, f"{name}[{pid}]"))
    return engine, sorted(others, reverse=True)[:3]


def lab_process_ids(init_pids) -> set[int]:
    """Every process in the lab's containers (their inits and all below them)."""
    found, queue = set(), list(init_pids)
    while queue:
        pid = queue.pop()
        found.add(pid)
        try:
            for task in Path(f"/proc/{pid}/task").iterdir():
                queue += [int(child) for child in (task / "children").read_text().split()]
        except OSError:
            continue
    return found


def machine_cpu() -> tuple[int, int]:
    """(busy, total) jiffies of the whole machine, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]
    total = sum(values[:8])
    return total - idle, total


def lab_containers(lab: str) -> dict[str, int]:
    """host name -> the pid of its container's init, for a running lab."""
    client = docker_client()
    found = {}
    for container in client.containers.list(filters={"label": f"{LAB_LABEL}={lab}"}):
        host = container.labels.get("io.labctl.host")
        if host and container.labels.get("io.labctl.role", "host") == "host":
            found[host] = container.attrs["State"]["Pid"]
    return found


def process_rss(pid: int, name: str) -> tuple[int, int] | None:
    """(VmRSS, pid) of the Python process at or below `pid` that runs the script `name`."""
    queue = [pid]
    while queue:
        current = queue.pop()
        try:
            words = Path(f"/proc/{current}/cmdline").read_bytes().split(b"\0")
            # python3 .../labsvc.pyc SPEC (the init process above it names it too)
            if os.path.basename(words[0]).startswith(b"python") and any(w.endswith(name.encode()) for w in words[1:]):
                for line in Path(f"/proc/{current}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1]) * 1024, current
            for task in Path(f"/proc/{current}/task").iterdir():
                queue += [int(child) for child in (task / "children").read_text().split()]
        except OSError:
            continue
    return None


def net_counters(pid: int) -> dict[str, int]:
    """Drop counters of a host's network namespace (read through /proc/PID/net)."""
    wanted = {("Udp", "RcvbufErrors"): "udp rcvbuf drops", ("Udp", "InErrors"): "udp in errors",
              ("Udp", "SndbufErrors"): "udp sndbuf errors",
              ("TcpExt", "ListenOverflows"): "listen overflows", ("TcpExt", "ListenDrops"): "listen drops"}
    found: dict[str, int] = {}
    for name in ("snmp", "netstat"):
        lines = Path(f"/proc/{pid}/net/{name}").read_text().splitlines()
        for head, values in zip(lines[::2], lines[1::2]):
            proto, keys = head.split(":", 1)
            for key, value in zip(keys.split(), values.split(":", 1)[1].split()):
                if (proto, key) in wanted:
                    found[wanted[proto, key]] = int(value)
    return found


MIB = 1 << 20


def settle(hosts: dict[str, int], cores: int) -> float:
    """Wait until the lab and the engine are quiet (what the check started has ended): the
    lab's containers and the engine's processes under IDLE_TARGET of the cores over a
    SETTLE_WINDOW, at most SETTLE_MAX; the seconds it took."""
    started = time.perf_counter()
    while time.perf_counter() - started < SETTLE_MAX:
        lab_before, processes_before = {h: cpu_ns(pid) for h, pid in hosts.items()}, process_ticks()
        time.sleep(SETTLE_WINDOW)
        lab = sum(cpu_ns(pid) - lab_before[h] for h, pid in hosts.items()) / 1e9
        engine, _ = cpu_by_process(processes_before, process_ticks(), lab_process_ids(hosts.values()))
        if (lab + engine) / (SETTLE_WINDOW * cores) < IDLE_TARGET:
            break
    return time.perf_counter() - started


def idle_and_memory(plan: labs.Plan) -> dict:
    """Idle CPU of the running lab over IDLE_SECONDS once it has settled, and each host's
    memory."""
    hosts = lab_containers(plan.name)
    cores = os.cpu_count() or 1
    settled = settle(hosts, cores)
    lab_pids = lab_process_ids(hosts.values())
    before_machine, before_processes = machine_cpu(), process_ticks()
    before = {host: cpu_ns(pid) for host, pid in hosts.items()}
    started = time.perf_counter()
    time.sleep(IDLE_SECONDS)
    elapsed = time.perf_counter() - started
    after_machine, after_processes = machine_cpu(), process_ticks()
    after = {host: cpu_ns(pid) for host, pid in hosts.items()}
    engine, others = cpu_by_process(before_processes, after_processes, lab_process_ids(hosts.values()) | lab_pids)
    busy = (after_machine[0] - before_machine[0]) / max(1, after_machine[1] - before_machine[1])
    lab_seconds = sum(after[h] - before[h] for h in hosts) / 1e9
    memory = {host: memory_bytes(pid) for host, pid in hosts.items()}
    rss = {host: process_rss(pid, "labsvc.pyc") for host, pid in hosts.items() if plan.hosts[host].role == "server"}
    return {"idle": {"seconds": elapsed, "settled": settled, "cores": cores, "machine_busy_share": busy,
                     "lab_cpu_seconds": lab_seconds, "lab_share": lab_seconds / (elapsed * cores),
                     "engine_cpu_seconds": engine, "others": others,
                     "busiest": sorted(((after[h] - before[h]) / 1e6, h) for h in hosts)[-3:]},
            "memory": memory, "server_rss": {h: v[0] for h, v in rss.items() if v}}


def idle_engine_only(hosts: dict[str, int]) -> dict:
    """The machine's busy share over IDLE_SECONDS with the engine's own containers up (the
    limit's: the same hosts, no labctl), once settled: the idle floor of the engine itself."""
    settled = settle(hosts, os.cpu_count() or 1)
    before = machine_cpu()
    started = time.perf_counter()
    time.sleep(IDLE_SECONDS)
    after = machine_cpu()
    return {"idle_busy": (after[0] - before[0]) / max(1, after[1] - before[1]),
            "idle_seconds": time.perf_counter() - started, "idle_settled": settled}


def machine_idle_baseline(seconds: float = IDLE_SECONDS) -> dict:
    """The bare machine (no lab of the bench up): its busy share, and the engine's and the
    busiest other processes' CPU seconds, over `seconds`."""
    before, processes = machine_cpu(), process_ticks()
    started = time.perf_counter()
    time.sleep(seconds)
    after = machine_cpu()
    engine, others = cpu_by_process(processes, process_ticks(), set())
    return {"busy": (after[0] - before[0]) / max(1, after[1] - before[1]), "seconds": time.perf_counter() - started,
            "engine_cpu_seconds": engine, "others": others}


# --- services under load ---------------------------------------------------------------------------

LOAD_SERVERS = {   # kind -> (host, service, port)
    "tcp": ("tcpsrv", "tcp-echo", 7),
    "udp": ("udpsrv", "udp-echo", 7),
    "tls": ("tlssrv", "tls-echo", 8443),
    "http": ("httpsrv", "http", 8080),
    "https": ("httpssrv", "https", 9443),
}


def load_lab_yaml(name: str, octet: int) -> str:
    lines = [f"name: {name}", "networks:", f"  net: {{subnet: 10.{octet}.0.0/24}}", "hosts:",
             f"  driver: {{networks: {{net: 10.{octet}.0.2}}, limits: {{memory: 1g}}}}"]
    for index, (host, service, port) in enumerate(LOAD_SERVERS.values()):
        lines.append(f"  {host}: {{networks: {{net: 10.{octet}.0.{10 + index}}}, "
                     f"services: [{{{service}: {{port: {port}}}}}]}}")
    return "\n".join(lines) + "\n"


class Sampler(threading.Thread):
    """Samples a server host's memory (cgroup, as docker stats) and its server process's
    resident size every 50 ms, keeping the peaks."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.stop = threading.Event()
        self.peak_host = self.peak_rss = 0

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                self.peak_host = max(self.peak_host, memory_bytes(self.pid))
                found = process_rss(self.pid, "labsvc.pyc")
                if found:
                    self.peak_rss = max(self.peak_rss, found[0])
            except (OSError, LookupError):
                pass
            self.stop.wait(0.05)


def services_under_load(folder: Path, names: Names) -> list[dict]:
    lab, octet = names.lab("load"), names.octet(LOAD_OFFSET)
    lab_folder = folder / lab
    lab_folder.mkdir(exist_ok=True)
    path = lab_folder / "lab.yaml"
    path.write_text(load_lab_yaml(lab, octet))
    base = [LABCTL, "-f", str(path)]
    script = (BENCH / "loadgen.py").read_text()
    rows = []
    CLEANUP.add(lab, [*base, "down"])
    try:
        result = run([*base, "up"], bound(6), what="labctl up")
        if result.returncode:
            return [{"kind": "all", "error": failed("labctl up", result)}]
        hosts = lab_containers(lab)
        driver = docker_client().containers.list(
            filters={"label": [f"{LAB_LABEL}={lab}", "io.labctl.host=driver"]})[0].name
        for index, (kind, (host, service, port)) in enumerate(LOAD_SERVERS.items()):
            counters = net_counters(hosts[host]), net_counters(hosts["driver"])
            before = memory_bytes(hosts[host])
            before_rss = (process_rss(hosts[host], "labsvc.pyc") or (0, 0))[0]
            sampler = Sampler(hosts[host])
            sampler.start()
            result = run(["docker", "exec", "-i", driver, "python3", "-", kind, f"10.{octet}.0.{10 + index}",
                          str(port), host, str(LOAD_CONNECTIONS), str(LOAD_ROUNDS)], 600, stdin=script,
                         what=f"the {kind} load")
            sampler.stop.set()
            sampler.join()
            try:
                row = json.loads(result.stdout.strip().splitlines()[-1])
            except (ValueError, IndexError):
                row = {"kind": kind, "error": failed("loadgen", result)}
            row.update(service=service, host_before=before, host_peak=sampler.peak_host,
                       rss_before=before_rss, rss_peak=sampler.peak_rss)
            drops = {}
            for side, pid, earlier in (("server", hosts[host], counters[0]), ("client", hosts["driver"], counters[1])):
                for key, value in net_counters(pid).items():
                    if value - earlier.get(key, 0):
                        drops[f"{side} {key}"] = value - earlier.get(key, 0)
            row["kernel"] = drops
            rows.append(row)
        result = run([*base, "down"], bound(6), what="labctl down")
        if result.returncode == 0:
            CLEANUP.done(lab)
        return rows
    except Hung as exc:
        return [*rows, {"kind": "the rest", "error": str(exc)}]
    finally:
        CLEANUP.run()


# --- the report ------------------------------------------------------------------------------------

def median_of(runs: list[dict], phase: str) -> float | None:
    values = [r[phase] for r in runs if phase in r and "error" not in r]
    return statistics.median(values) if values else None


def fmt(value: float | None, width: int = 8) -> str:
    return f"{value:{width - 1}.2f}s" if value is not None else f"{'-':>{width}}"


def report_size(n: int, floor_runs: list[dict], labctl_runs: list[dict], limit_runs: list[dict]) -> None:
    plan_checks = (floor_runs or labctl_runs)[0]["count"]
    rounds = len(labctl_runs)
    label = f"median of {rounds} rounds" if rounds > 1 else "one round"
    print(f"\nN = {n} hosts, {plan_checks} checks ({label}; each figure and ratio from this run)")
    print(f"  {'phase':<8} {'floor':>8} {'labctl':>8} {'labctl/floor':>13} {'limit':>8} {'labctl/limit':>13}"
          f"  target")
    targets = TARGETS.get(n, {})
    for phase in PHASES:
        floor, mine = median_of(floor_runs, phase), median_of(labctl_runs, phase)
        ratio = f"{mine / floor:12.2f}x" if floor and mine else f"{'-':>13}"
        theirs = LIMIT_PHASES.get(phase)
        limit = median_of(limit_runs, theirs) if theirs else None
        to_limit = f"{mine / limit:12.2f}x" if limit and mine else f"{'-':>13}"
        target = targets.get(phase)
        verdict = ""
        if target:
            verdict = f" <= {target:.2f}x " + ("met" if limit and mine and mine / limit <= target else "MISSED")
        limit_text = f"{theirs}" if theirs else ""
        print(f"  {phase:<8} {fmt(floor)} {fmt(mine)} {ratio} {fmt(limit)} {to_limit}{verdict}"
              + (f"   (limit: {limit_text})" if limit_text and phase != "total" else ""))
    for name, runs, phases in (("floor", floor_runs, PHASES), ("labctl", labctl_runs, PHASES),
                               ("limit", limit_runs, tuple(LIMIT_PHASES.values()))):
        for index, r in enumerate(runs, 1):
            shown = "  ".join(f"{p} {r[p]:.2f}s" for p in phases if p in r)
            status = f"  {r['passed']}/{r['count']} passed" if "count" in r else ""
            extra = ""
            if "hung" in r:
                extra += f"  HUNG: {r['hung']}"
            elif "error" in r:
                extra += f"  ERROR: {r['error']}"
            if r.get("failures"):
                extra += f"  failures: {r['failures'][:3]}"
            print(f"    {name:<6} #{index}: {shown}{status}{extra}")


def report_idle(figures: dict, baseline: dict, engine_idle: dict) -> None:
    idle, memory = figures["idle"], figures["memory"]
    cores = idle["cores"]
    above = idle["machine_busy_share"] - baseline["busy"]
    print(f"\nIdle: the running labctl lab of 30 hosts over {idle['seconds']:.0f}s, once settled "
          f"({idle['settled']:.0f}s after its checks), against the bare machine over {baseline['seconds']:.0f}s "
          f"just before ({cores} cores)")
    print(f"  machine busy (/proc/stat)           {idle['machine_busy_share'] * 100:6.2f}% of {cores} cores"
          f"   (bare machine: {baseline['busy'] * 100:.2f}%)")
    print(f"  above the bare machine              {above * 100:+6.2f}% of {cores} cores"
          f"   target < {IDLE_TARGET * 100:.1f}%: {'met' if above < IDLE_TARGET else 'MISSED'}")
    if engine_idle:
        floor = engine_idle["idle_busy"] - baseline["busy"]
        print(f"  the engine's own containers idle    {engine_idle['idle_busy'] * 100:6.2f}% of {cores} cores"
              f"   (the same {len(memory)} containers with no labctl, over {engine_idle['idle_seconds']:.0f}s:"
              f" {floor * 100:+.2f}% above the bare machine; labctl's lab {(above - floor) * 100:+.2f}% above them)")
    print(f"  the lab's containers (cgroup cpu)   {idle['lab_share'] * 100:6.3f}% of {cores} cores"
          f"   ({idle['lab_cpu_seconds'] * 1000:.0f} ms CPU in {idle['seconds']:.0f}s; busiest: "
          + ", ".join(f"{h} {ms:.0f} ms" for ms, h in reversed(idle["busiest"])) + ")")
    engine_share = idle["engine_cpu_seconds"] / (idle["seconds"] * cores)
    bare_engine = baseline["engine_cpu_seconds"] / (baseline["seconds"] * cores)
    print(f"  the engine (dockerd, containerd, shims) {engine_share * 100:6.3f}% of {cores} cores"
          f"   ({idle['engine_cpu_seconds'] * 1000:.0f} ms; bare machine: {bare_engine * 100:.3f}%, "
          f"{baseline['engine_cpu_seconds'] * 1000:.0f} ms)")
    print(f"  lab + engine above the bare machine's engine {(idle['lab_share'] + engine_share - bare_engine) * 100:+6.3f}%"
          " of the cores (what the lab itself costs, whatever else runs)")
    print("  busiest other processes (noise): "
          + (", ".join(f"{name} {seconds * 1000:.0f} ms" for seconds, name in idle["others"]) or "none")
          + "; on the bare machine: "
          + (", ".join(f"{name} {seconds * 1000:.0f} ms" for seconds, name in baseline["others"]) or "none"))
    servers = [v for h, v in memory.items() if h.startswith("s")]
    clients = [v for h, v in memory.items() if h.startswith("c")]
    print("\nMemory per host (cgroup usage less inactive file cache, as docker stats)")
    print(f"  all {len(memory)} hosts: median {statistics.median(memory.values()) / MIB:.1f} MiB, "
          f"max {max(memory.values()) / MIB:.1f} MiB, total {sum(memory.values()) / MIB:.0f} MiB")
    if servers:
        print(f"  {len(servers)} tcp-echo server hosts: median {statistics.median(servers) / MIB:.1f} MiB, "
              f"max {max(servers) / MIB:.1f} MiB"
              + (f"; server process RSS median {statistics.median(figures['server_rss'].values()) / MIB:.1f} MiB"
                 if figures.get("server_rss") else ""))
    if clients:
        print(f"  {len(clients)} client hosts (no program of their own): median {statistics.median(clients) / MIB:.1f} MiB, "
              f"max {max(clients) / MIB:.1f} MiB")


def report_load(rows: list[dict]) -> None:
    print(f"\nServices under load: {LOAD_CONNECTIONS} concurrent connections (udp: sockets) from one lab "
          f"host, {LOAD_ROUNDS} exchanges each")
    print(f"  {'service':<9} {'done':>6} {'errors':>6} {'throughput':>11} {'p50':>8} {'p99':>8} {'max':>8}"
          f" {'connect p99':>11} {'host mem':>17} {'server RSS':>17}  0 errors, < 50 MiB")
    for row in rows:
        if "error" in row:
            print(f"  {row.get('service', row['kind']):<9} ERROR: {row['error']}")
            continue
        mem = f"{row['host_before'] / MIB:5.1f}->{row['host_peak'] / MIB:5.1f}MiB"
        rss = f"{row['rss_before'] / MIB:5.1f}->{row['rss_peak'] / MIB:5.1f}MiB"
        ok = row["failed"] == 0 and max(row["host_peak"], row["rss_peak"]) < 50 * MIB
        ms = lambda v: f"{v:6.1f}ms" if v is not None else f"{'-':>8}"  # noqa: E731
        print(f"  {row['service']:<9} {row['exchanges']:>6} {row['failed']:>6} {row['throughput'] or 0:>9.0f}/s"
              f" {ms(row['p50_ms'])} {ms(row['p99_ms'])} {ms(row['max_ms'])} {ms(row['connect_p99_ms']):>11}"
              f" {mem:>17} {rss:>17}  {'met' if ok else 'MISSED'}")
        if row.get("errors"):
            for text, count in row["errors"].items():
                print(f"      {count} x {text}")
        if row.get("kernel"):
            print("      kernel counters: " + ", ".join(f"{key} +{value}" for key, value in row["kernel"].items()))


# --- main -------------------------------------------------------------------------------------------

def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10,30,100", help="comma-separated: 10, 30, 100")
    parser.add_argument("--rounds", type=int, default=3, help="rounds for 10 and 30 hosts (100: one)")
    parser.add_argument("--skip-load", action="store_true", help="skip the services under load")
    parser.add_argument("--skip-idle", action="store_true", help="skip idle CPU and memory")
    parser.add_argument("--skip-limit", action="store_true", help="skip the engine's own limit")
    parser.add_argument("--skip-floor", action="store_true", help="skip the floor (hand-written Compose)")
    parser.add_argument("--bound", type=float, default=0,
                        help="every step's bound in seconds (default: 60 + 3 per host)")
    parser.add_argument("--tag", default="", help="appended to the lab names (bench-n30-TAG)")
    parser.add_argument("--base-octet", type=int, default=200,
                        help="subnets 10.BASE.x to 10.BASE+7.x (default 200)")
    args = parser.parse_args()
    names = Names(args.tag, args.base_octet)
    sizes = [int(size) for size in args.sizes.split(",")]
    signal.signal(signal.SIGTERM, _terminated)
    compose = compose_command()
    if compose is None:
        print("bench: Docker Compose v2 is not installed (make env installs it)", file=sys.stderr)
        return 2
    ensure_host_image(docker_client(), say)
    image = host_tag()
    busy = machine_idle_baseline(3)["busy"]
    if busy > 0.10:
        say(f"WARNING: the machine is {busy * 100:.0f}% busy before the bench starts; its figures "
            "will carry that load")
    began = time.perf_counter()
    results: dict[int, tuple[list, list, list]] = {}
    idle_figures = None
    engine_idle: dict = {}
    baseline: dict = {}
    limit = args.bound or None
    sides = [side for side, skipped in (("floor", args.skip_floor), ("labctl", False), ("limit", args.skip_limit))
             if not skipped]
    try:
        with tempfile.TemporaryDirectory(prefix="labctl-bench-floor-") as name:
            folder = Path(name)
            if not args.skip_floor:
                say("warming up (a floor of 2 hosts, not counted)")
                run_floor(labs.flat_plan(names.lab("floor-warmup"), 2, names.octet(WARMUP_OFFSET)),
                          folder, image, compose, limit=limit)
            for n in sizes:
                mine_octet, floor_octet = (names.octet(offset) for offset in OFFSETS[n])
                if n == 100:
                    mine = labs.routed_plan(names.lab("n100"), mine_octet)
                    floor = labs.routed_plan(names.lab("floor-n100"), floor_octet)
                    bare = labs.routed_plan(names.lab("limit-n100"), floor_octet)
                else:
                    mine = labs.flat_plan(names.lab(f"n{n}"), n, mine_octet)
                    floor = labs.flat_plan(names.lab(f"floor-n{n}"), n, floor_octet)
                    bare = labs.flat_plan(names.lab(f"limit-n{n}"), n, floor_octet)
                rounds = 1 if n == 100 else args.rounds
                runs: dict[str, list] = {"floor": [], "labctl": [], "limit": []}
                for index in range(rounds):
                    last = index == rounds - 1
                    hook = idle_and_memory if (n == 30 and last and not args.skip_idle) else None
                    order = sides[index % len(sides):] + sides[:index % len(sides)]
                    for which in order:
                        say(f"N={n} round {index + 1}/{rounds}: {which}")
                        if which == "floor":
                            latest = run_floor(floor, folder, image, compose, limit=limit)
                        elif which == "limit":
                            latest = run_limit(bare, image, limit, idle_engine_only if hook else None)
                            if hook and "idle_busy" in latest:
                                engine_idle = {k: latest.pop(k) for k in ("idle_busy", "idle_seconds", "idle_settled")}
                        else:
                            if hook:
                                say(f"the bare machine (no lab up) over {IDLE_SECONDS}s")
                                baseline = machine_idle_baseline()
                            latest = run_labctl(mine, folder, hook, limit)
                            if hook and "idle" in latest:
                                idle_figures = {k: latest.pop(k) for k in ("idle", "memory", "server_rss")}
                        runs[which].append(latest)
                        phases = tuple(LIMIT_PHASES.values()) if which == "limit" else PHASES
                        say(f"  {which}: " + ", ".join(f"{p} {latest[p]:.2f}s" for p in phases if p in latest)
                            + (f", {latest['passed']}/{latest['count']} passed" if "count" in latest else "")
                            + (f"; ERROR {latest['error']}" if "error" in latest else ""))
                results[n] = (runs["floor"], runs["labctl"], runs["limit"])
            load_rows = None if args.skip_load else services_under_load(folder, names)
    except KeyboardInterrupt:
        CLEANUP.run()
        print("bench: interrupted; what it started has been taken down", file=sys.stderr)
        return 130
    finally:
        CLEANUP.run()

    version = subprocess.run(["git", "-C", str(BENCH.parent), "describe", "--always", "--dirty"],
                             capture_output=True, text=True).stdout.strip() or "unknown"
    print(f"\nlabctl against the floor (hand-written Compose + docker exec) and the engine's own limit, "
          f"same lab, same run (labctl {version}, image {image}, {os.cpu_count()} cores)")
    print("  floor: compose up -d + one exec waiting on every server port; one exec per client, all at once;"
          " compose down")
    print("  labctl: labctl up / check (both sides of every exchange) / down, through the CLI")
    print(f"  limit: the floor's networks and containers created + started, then removed, through the API, "
          f"{engine_limit.THREADS} at a time; no readiness, no checks")
    for n, (floor_runs, labctl_runs, limit_runs) in results.items():
        report_size(n, floor_runs, labctl_runs, limit_runs)
    if idle_figures and baseline:
        report_idle(idle_figures, baseline, engine_idle)
    if load_rows:
        report_load(load_rows)
    print(f"\nbench took {time.perf_counter() - began:.0f}s")
    hung = [r["hung"] for runs in results.values() for side in runs for r in side if "hung" in r]
    if hung:
        print("\nHUNG (recorded, cleaned up, and the bench went on): " + "; ".join(hung))
    if CLEANUP.problems:
        print("\nCLEANUP PROBLEMS: " + "; ".join(CLEANUP.problems))
    try:
        remaining = bounded_call(lambda: left_behind(CLEANUP.used), 60, "listing what is left")
    except Exception as exc:
        remaining = [f"(the engine did not say: {exc})"]
    if remaining:
        print(f"\nLEFT BEHIND (the engine refused to remove them): {', '.join(remaining)}")
    broken = any("error" in r or r.get("passed") != r.get("count")
                 for runs in results.values() for side in runs for r in side)
    return 1 if broken or remaining else 0


if __name__ == "__main__":
    sys.exit(main())
