#!/usr/bin/env python3
"""Network administration, run by short-lived helper containers that join a namespace
with NET_ADMIN, so lab hosts themselves never hold it.

  netadmin.py routes [--no-default6] [--no-dns] DEST=VIA ...
                                       in a host's namespace: drop the IPv6 default route
                                       (all its IPv6 networks are internal), add or replace
                                       routes, wait until no IPv6 address is tentative, then
                                       with --no-dns (all its networks are internal) refuse
                                       Docker's embedded resolver (see below)
  netadmin.py enter JSON               from a helper that shares the engine machine's process
                                       table, with SYS_ADMIN: for each {"host", "pid",
                                       "container", "argv"} of JSON (a list), enter the
                                       network namespace of process PID, once its control
                                       group shows it is CONTAINER's, and run `routes ARGV`
                                       there, a few hosts at a time (see below)
  netadmin.py probe FOLDER              from a helper like enter's: for each {"host", "pid",
                                       "container", "seconds"} of FOLDER/jobs.json (the Nth's files in
                                       FOLDER/N), enter that namespace as enter does, keep only
                                       NET_RAW and NET_BIND_SERVICE, and run labctl's probe
                                       there, alone in a process table of its own, on
                                       FOLDER/N/spec with the credentials of
                                       FOLDER/N/pki, its output into FOLDER/N/out and err
                                       (16 MiB each at most), killed after SECONDS (124);
                                       prints {"N": exit status} (see below)
  netadmin.py fabric-add TAG BRIDGE... in the engine's namespace: let routed lab traffic
                                       cross each lab bridge, and keep every lab bridge off
                                       the engine's own services (see below); BRIDGE:6 also
                                       for IPv6, BRIDGE:6i for IPv6 on an internal network
  netadmin.py fabric-del TAG           remove every rule tagged TAG
  netadmin.py features                 in a throwaway namespace: which kernel features work
                                       (prints JSON {feature: true/false})
  netadmin.py link ADDRESS up|down    in a host's namespace: take the interface holding
                                       ADDRESS down, or up again
  netadmin.py capture WHERE FILE SECONDS [FILTER...]
                                       tcpdump on WHERE (an interface name, `any`, or an
                                       address, meaning the interface that holds it) into FILE,
                                       for SECONDS at most (it ends itself then, whether or not
                                       its owner is still there to end it); FILTER is a BPF
                                       expression, never tcpdump options

Docker drops packets on an `internal` network whose destination lies outside that
network's subnet, which is exactly what a lab router forwards. The fabric rule accepts,
in Docker's own DOCKER-USER chain, only traffic that enters and leaves the same lab
bridge, so nothing reaches beyond the lab. Docker filters no IPv6 unless told to, so for
IPv6 the fabric also does what Docker does for IPv4 on an internal network: nothing enters
or leaves the bridge.

Each lab bridge also carries the engine machine's own addresses (its gateway, in both
families), and Docker filters nothing that enters the machine itself: so the fabric drops,
in the INPUT chain of both families, everything entering the machine from a lab bridge,
save IPv6 neighbour discovery (a host on an `internal: false` network resolves its gateway
by it; IPv4 does the same over ARP, which no iptables rule sees). Traffic a lab routes out
to the world is forwarded, never input, so it keeps working. Nothing of labctl talks to
the engine machine over a lab network: it reaches hosts through the engine's API.

On an internal network Docker still answers at 127.0.0.11 inside each host, and its
resolver forwards what it does not know to the engine machine's resolvers: a way out of
the lab. `routes --no-dns` refuses that address from the host's own namespace, in the
filter hook after Docker's nat rewrites 127.0.0.11:53 to the resolver's real port, with a
reset or a port-unreachable so that a lookup of an unknown name fails at once. The host's
program holds no NET_ADMIN, so it cannot take the rule away; names of the lab resolve from
/etc/hosts, or through the lab's own DNS at its lab address.

`enter` does for many hosts at once what one `routes` helper per host would: one
container in all, not one per host, so a lab's start costs the engine no more containers
than it has hosts. Only the network namespace is entered; every program run there (ip,
iptables) is this helper's own, never one a host could have replaced. The host's process
is known by its id and its start time, read before its namespace and control group are
and again after: so a process id that another process took over in between is refused
rather than entered. Standard library only.
"""

from __future__ import annotations

import ctypes
import json
import os
import resource
import signal
import shlex
import socket
import subprocess
import time
import sys


def run(*argv: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(argv, capture_output=True, text=True)
    if check and result.returncode != 0:
        sys.exit(f"netadmin: {' '.join(argv)}: {result.stderr.strip() or result.stdout.strip()}")
    return result


ROUTE_FLAGS = ("--no-default6", "--no-dns")


def routes(args: list[str]) -> None:
    flags = [arg for arg in args if arg.startswith("--")]
    pairs = [arg for arg in args if not arg.startswith("--")]
    unknown = [flag for flag in flags if flag not in ROUTE_FLAGS]
    if unknown:
        sys.exit(f"netadmin: routes: unknown option {unknown[0]}")
    if "--no-default6" in flags:
        # Every IPv6 network of this host is internal: no route out of the lab.
        run("ip", "-6", "route", "del", "default", check=False)
    chosen = []
    for pair in pairs:
        destination, _, via = pair.partition("=")
        address = resolve(via)
        if not destination or any(c.isspace() for c in destination + address):
            sys.exit(f"netadmin: routes: not a route: {pair!r}")   # one word each in ip's batch
        chosen.append((destination, via, address))
    if chosen:
        # One `ip` for all of them: a host behind many routers costs one program, not one a route.
        batch = "".join(f"route replace {destination} via {address}\n" for destination, _, address in chosen)
        result = subprocess.run(["ip", "-batch", "-"], input=batch, capture_output=True, text=True)
        if result.returncode != 0:
            sys.exit(f"netadmin: ip route replace: {result.stderr.strip() or result.stdout.strip()}")
    for destination, via, address in chosen:
        print(f"route {destination} via {via}" + (f" ({address})" if address != via else ""))
    settle()
    if "--no-dns" in flags:
        # Last: resolving a router's name above may need that very resolver.
        refuse_embedded_dns()


EMBEDDED_DNS = "127.0.0.11/32"
DNS_COMMENT = "labctl:embedded-dns-refused"


def embedded_dns_rules() -> list[list[str]]:
    """OUTPUT rules refusing Docker's embedded resolver, in chain order: any protocol, any
    port (its real port is a random one), refused rather than dropped so lookups fail fast."""
    comment = ["-m", "comment", "--comment", DNS_COMMENT]
    return [["-d", EMBEDDED_DNS, "-p", "tcp", *comment, "-j", "REJECT", "--reject-with", "tcp-reset"],
            ["-d", EMBEDDED_DNS, *comment, "-j", "REJECT", "--reject-with", "icmp-port-unreachable"]]


def embedded_dns_input_rule() -> list[str]:
    """What reaches the resolver's real port without passing OUTPUT (a packet written on a
    raw socket, which NET_RAW allows and netfilter's OUTPUT never sees) is dropped coming in."""
    return ["-d", EMBEDDED_DNS, "-m", "comment", "--comment", DNS_COMMENT, "-j", "DROP"]


def refuse_embedded_dns() -> None:
    binary, listing = _working_iptables()
    _restore(binary, listing, {"OUTPUT": embedded_dns_rules(), "INPUT": [embedded_dns_input_rule()]}, DNS_COMMENT)
    print("dns: Docker's embedded resolver refused (every network of this host is internal)")


def _restore(binary: str, listing: str, wanted: dict[str, list[list[str]]], tag: str) -> None:
    """Put `wanted` at the top of each chain of the filter table, and take away the rules
    tagged `tag` that `listing` (iptables -S) shows there, in one transaction: one program,
    whatever the number of rules or bridges."""
    restore = [f"{binary}-restore", "-w", "--noflush"]   # iptables-legacy-restore for the legacy one
    try:
        result = subprocess.run(restore, input=replacement(listing, wanted, tag), capture_output=True, text=True)
    except FileNotFoundError:
        sys.exit(f"netadmin: no {restore[0]} in this image")
    if result.returncode != 0:
        sys.exit(f"netadmin: {' '.join(restore)}: {result.stderr.strip()}")


def replacement(listing: str, wanted: dict[str, list[list[str]]], tag: str) -> str:
    """iptables-restore input for the filter table that puts `wanted` at the top of each
    chain, in order, in one transaction: the rules tagged `tag` that `listing` (iptables -S)
    shows go first, so running it again leaves one copy, not two."""
    lines = ["*filter"]
    for rule in listing.splitlines():
        words = shlex.split(rule)
        if words[:1] == ["-A"] and words[1] in wanted and comment_of(rule) == tag:
            lines.append(shlex.join(["-D", *words[1:]]))
    for chain, rules in wanted.items():
        lines += [shlex.join(["-I", chain, str(position), *rule]) for position, rule in enumerate(rules, 1)]
    return "\n".join([*lines, "COMMIT", ""])


def _working_iptables() -> tuple[str, str]:
    """The image's iptables, or its legacy flavour where the kernel has no nf_tables, and
    what its filter table holds now (iptables -S)."""
    for binary in ("iptables", "iptables-legacy"):
        try:
            listing = run(binary, "-w", "-S", check=False)
        except FileNotFoundError:
            continue
        if listing.returncode == 0:
            return binary, listing.stdout
    sys.exit("netadmin: no working iptables in this namespace")


IFA_F_TENTATIVE = 0x40   # an IPv6 address's flags in /proc/net/if_inet6


def settle(timeout: float = 5.0) -> None:
    """Wait until no IPv6 address here is still tentative (duplicate address detection
    takes a second or two after an interface comes up). Until then a router's link-local
    address cannot ask for a neighbour's, and the first packet it forwards waits a second;
    Docker moves interfaces in before the container's sysctls could turn detection off.
    Read from /proc/self/net, which is this namespace's: no program to start."""
    deadline = time.monotonic() + timeout
    while tentative():
        if time.monotonic() > deadline:
            print("settle: addresses still tentative; going on")
            return
        time.sleep(0.05)


def tentative() -> bool:
    try:
        with open("/proc/self/net/if_inet6") as table:
            return any(int(line.split()[4], 16) & IFA_F_TENTATIVE for line in table if len(line.split()) >= 6)
    except FileNotFoundError:   # no IPv6 in this kernel
        return False


def resolve(name: str, timeout: float = 60.0) -> str:
    """An address as is, or a router's name as this namespace's DNS answers it: on a Swarm
    addresses are assigned at deploy, and the name resolves to the router's address on the
    network this host shares with it. The router may still be starting, so keep asking."""
    try:
        socket.inet_pton(socket.AF_INET6 if ":" in name else socket.AF_INET, name)
        return name
    except OSError:
        pass
    deadline = time.monotonic() + timeout
    while True:
        try:
            return socket.gethostbyname(name)
        except OSError as exc:
            if time.monotonic() > deadline:
                sys.exit(f"netadmin: cannot resolve router '{name}': {exc}")
            time.sleep(0.5)


CLONE_NEWNET = 0x40000000
ENTER_AT_ONCE = 6   # hosts set up at once: each runs iptables, and the helper's pids are capped


def enter(spec: str) -> None:
    """Run `routes` in each host's network namespace, ENTER_AT_ONCE at a time; each host's
    lines are prefixed with its name. Fails (after all have run) if any failed."""
    jobs = json.loads(spec)
    running: dict[int, str] = {}
    failed: list[str] = []
    for job in jobs:
        while len(running) >= ENTER_AT_ONCE:
            _reap(running, failed)
        sys.stdout.flush()
        child = os.fork()
        if child == 0:
            os._exit(_routes_in(job["host"], int(job["pid"]), str(job["container"]), list(job["argv"])))
        running[child] = job["host"]
    while running:
        _reap(running, failed)
    if failed:
        sys.exit(f"netadmin: routes failed for {', '.join(sorted(failed))}")


def _reap(running: dict[int, str], failed: list[str]) -> None:
    child, status = os.wait()
    host = running.pop(child, None)
    if host is not None and os.waitstatus_to_exitcode(status) != 0:
        failed.append(host)


class Prefixed:
    """A stream that writes each whole line as `host: line`, for one child's output."""

    def __init__(self, host: str, stream) -> None:
        self.host, self.stream, self.partial = host, stream, ""

    def write(self, text: str) -> int:
        *lines, self.partial = (self.partial + text).split("\n")
        for line in lines:
            self.stream.write(f"{self.host}: {line}\n")
        return len(text)

    def flush(self) -> None:
        if self.partial:
            self.write("\n")
        self.stream.flush()


def _routes_in(host: str, pid: int, container: str, argv: list[str]) -> int:
    """In a child: enter the host's namespace and set its routes; the exit status."""
    sys.stdout = Prefixed(host, sys.__stdout__)  # type: ignore[assignment]
    try:
        if argv[:1] != ["routes"]:
            raise SystemExit(f"netadmin: enter runs routes only, not {argv[:1]}")
        enter_namespace(pid, container)
        routes(argv[1:])
        return 0
    except SystemExit as exc:
        if exc.code not in (0, None):
            print(f"netadmin: {host}: {str(exc.code).removeprefix('netadmin: ')}", file=sys.stderr)
            return 1
        return 0
    except Exception as exc:   # noqa: BLE001 - one host's failure is reported, not a traceback
        print(f"netadmin: {host}: {exc.__class__.__name__}: {exc}", file=sys.stderr)
        return 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()


def enter_namespace(pid: int, container: str) -> None:
    """Move this process into the network namespace of `pid`, which must be a process of
    `container` (a full container id): its start time is read before its namespace is
    opened and again after its control group is, so a process id that another process took
    over in between is refused, not entered."""
    if len(container) < 32 or not all(c in "0123456789abcdef" for c in container):
        sys.exit(f"netadmin: not a container id: {container!r}")
    gone = f"netadmin: process {pid} of container {container[:12]} is gone (the host stopped)"
    try:
        started = start_time(pid)
        namespace = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        with open(f"/proc/{pid}/cgroup") as groups:
            belongs = container in groups.read()
        same = start_time(pid) == started
    except (ProcessLookupError, FileNotFoundError):
        sys.exit(gone)
    except PermissionError:
        sys.exit(f"netadmin: cannot open the namespace of process {pid} (container {container[:12]})")
    if not same:
        sys.exit(gone)
    if not belongs:
        sys.exit(f"netadmin: process {pid} is not container {container[:12]}'s")
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(namespace, CLONE_NEWNET) != 0:
        error = ctypes.get_errno()
        sys.exit(f"netadmin: cannot enter the namespace of {container[:12]}: {os.strerror(error)}")
    os.close(namespace)


CLONE_NEWPID = 0x20000000
PROBE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "probe.py")
PROBE_OUTPUT = 16 << 20   # bytes a probe may write to each of its files (its observations, its errors)
TIMED_OUT = 124
PROBE_AT_ONCE = 16        # client hosts probed at once, as labctl probes them one helper each
KEPT_CAPABILITIES = (10, 13)   # CAP_NET_BIND_SERVICE, CAP_NET_RAW: what a probe may need
PR_CAPBSET_DROP, LAST_CAPABILITY = 24, 63
CAPABILITY_VERSION_3 = 0x20080522


def probe_hosts(folder: str) -> None:
    """Run labctl's probe in each job's host namespace, PROBE_AT_ONCE at a time; print the
    exit status of each (a host that cannot be entered is 1, with why in its err)."""
    with open(os.path.join(folder, "jobs.json")) as listed:
        jobs = json.load(listed)
    running: dict[int, str] = {}
    statuses: dict[str, int] = {}
    for index, job in enumerate(jobs):
        while len(running) >= PROBE_AT_ONCE:
            child, status = os.wait()
            statuses[running.pop(child)] = exit_status(status)
        child = os.fork()
        if child == 0:
            os._exit(_probe_in(os.path.join(folder, str(index)), int(job["pid"]), str(job["container"]),
                               float(job["seconds"])))
        running[child] = str(index)
    while running:
        child, status = os.wait()
        statuses[running.pop(child)] = exit_status(status)
    print(json.dumps(statuses))


def exit_status(status: int) -> int:
    """A wait status as a shell says it: the exit code, or 128 + the signal that ended it."""
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


def _probe_in(place: str, pid: int, container: str, seconds: float) -> int:
    """In a child: its output into the job's files, the host's network namespace entered,
    every capability but a probe's given up for good, then the probe in a process table of
    its own; the probe's exit status (1, with why in err, if it could not run)."""
    for stream, name in ((1, "out"), (2, "err")):
        descriptor = os.open(os.path.join(place, name), os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        os.dup2(descriptor, stream)
        os.close(descriptor)
    sys.stdout = os.fdopen(1, "w", closefd=False)
    sys.stderr = os.fdopen(2, "w", closefd=False)
    try:
        with open("/proc/self/oom_score_adj", "w") as adjust:
            adjust.write("1000")   # short of memory, a probe goes first, never the helper that reports
    except OSError:
        pass
    try:
        enter_namespace(pid, container)
        status = run_alone([sys.executable, "-E", "-s", "-S", PROBE, "--pki", os.path.join(place, "pki"),
                            "@" + os.path.join(place, "spec")], seconds)
        if status == 128 + signal.SIGXFSZ:
            print(f"netadmin: the probe's output ran over {PROBE_OUTPUT >> 20} MiB", file=sys.stderr)
        elif status == TIMED_OUT:
            print(f"netadmin: the probe ran over {seconds:g}s", file=sys.stderr)
        sys.stderr.flush()
        return status
    except SystemExit as exc:
        print(str(exc.code), file=sys.stderr)
    except OSError as exc:
        print(f"netadmin: cannot start the probe: {exc}", file=sys.stderr)
    sys.stderr.flush()
    return 1


def run_alone(argv: list[str], seconds: float) -> int:
    """Run `argv` as the first process of a process table of its own, with only a probe's
    capabilities, its files capped at PROBE_OUTPUT, for at most `seconds` (then it is
    killed, and the status is TIMED_OUT); its exit status. The helper sees the machine's
    processes (to find a host's): what it runs for a host, root still, can signal none."""
    if ctypes.CDLL(None, use_errno=True).unshare(CLONE_NEWPID) != 0:
        sys.exit(f"netadmin: cannot give the probe its own process table: {os.strerror(ctypes.get_errno())}")
    keep_capabilities(KEPT_CAPABILITIES)
    sys.stdout.flush()
    sys.stderr.flush()
    child = os.fork()
    if child == 0:
        try:
            resource.setrlimit(resource.RLIMIT_FSIZE, (PROBE_OUTPUT, PROBE_OUTPUT))
            os.execv(argv[0], argv)
        finally:
            os._exit(127)
    deadline = time.monotonic() + seconds
    while True:   # a poll: the probe's own clock is its timeouts; this one is for a probe held up
        ended, status = os.waitpid(child, os.WNOHANG)
        if ended:
            return exit_status(status)
        if time.monotonic() > deadline:
            os.kill(child, signal.SIGKILL)   # the first process of its table: the rest go with it
            os.waitpid(child, 0)
            return TIMED_OUT
        time.sleep(0.05)


def keep_capabilities(kept: tuple[int, ...]) -> None:
    """Give up every capability but `kept`: dropped from the bounding set first (root's
    next exec would otherwise take them all back), then from those held now."""
    libc = ctypes.CDLL(None, use_errno=True)
    for capability in range(LAST_CAPABILITY + 1):
        if capability not in kept and libc.prctl(PR_CAPBSET_DROP, capability, 0, 0, 0) != 0 \
                and ctypes.get_errno() != 22:   # EINVAL: past the kernel's last capability
            sys.exit(f"netadmin: cannot give up capability {capability}: {os.strerror(ctypes.get_errno())}")
    mask = sum(1 << capability for capability in kept)
    header = (ctypes.c_uint32 * 2)(CAPABILITY_VERSION_3, 0)
    data = (ctypes.c_uint32 * 6)(mask & 0xFFFFFFFF, mask & 0xFFFFFFFF, 0, mask >> 32, mask >> 32, 0)
    if libc.capset(header, data) != 0:
        sys.exit(f"netadmin: cannot give up capabilities: {os.strerror(ctypes.get_errno())}")


def start_time(pid: int) -> str:
    """When `pid` started, in clock ticks since boot (/proc/PID/stat's 22nd field; the
    command name before it is in parentheses and may hold anything)."""
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().rsplit(")", 1)[1].split()[19]


def _iptables() -> str | None:
    """The iptables flavour that holds Docker's DOCKER-USER chain on this engine."""
    for binary in ("iptables-nft", "iptables-legacy", "iptables"):
        try:
            if run(binary, "-w", "-S", "DOCKER-USER", check=False).returncode == 0:
                return binary
        except FileNotFoundError:
            continue
    return None


def _ip6tables(flavour: str | None) -> str:
    """The ip6tables of the same flavour (nft or legacy) as the iptables Docker uses."""
    return (flavour or "iptables").replace("iptables", "ip6tables")


def comment_of(rule: str) -> str | None:
    """The --comment of an `iptables -S` line, unquoted, or None."""
    words = shlex.split(rule)
    for position, word in enumerate(words[:-1]):
        if word == "--comment":
            return words[position + 1]
    return None


# ICMPv6 router solicitation and advertisement, neighbour solicitation and advertisement,
# redirect: what a host needs of its gateway to route out of an `internal: false` network.
NEIGHBOUR_DISCOVERY = (133, 134, 135, 136, 137)


def input_rules(tag: str, bridge: str, family: int) -> list[list[str]]:
    """The INPUT rules that keep a lab bridge off the engine machine's own services, in
    chain order: nothing enters the machine from the bridge, save IPv6 neighbour discovery."""
    comment = ["-m", "comment", "--comment", tag]
    spared = [["-i", bridge, "-p", "ipv6-icmp", "-m", "icmp6", "--icmpv6-type", str(kind), *comment,
               "-j", "ACCEPT"] for kind in NEIGHBOUR_DISCOVERY] if family == 6 else []
    return [*spared, ["-i", bridge, *comment, "-j", "DROP"]]


def fabric_add(tag: str, bridges: list[str]) -> None:
    """Each bridge is NAME (IPv4), NAME:6 (also IPv6) or NAME:6i (also IPv6, internal).
    All of a family's rules go in at once (_restore): hosts start only once this ends."""
    binary = _iptables()
    if binary is None:
        print("fabric: no DOCKER-USER chain (the engine manages no iptables); nothing to forward for IPv4")
    four: dict[str, list[list[str]]] = {"DOCKER-USER": [], "INPUT": []} if binary else {"INPUT": []}
    six: dict[str, list[list[str]]] = {"FORWARD": [], "INPUT": []}
    for spec in bridges:
        bridge, _, v6 = spec.partition(":")
        if binary is not None:
            four["DOCKER-USER"].append(["-i", bridge, "-o", bridge, "-m", "comment", "--comment", tag,
                                        "-j", "ACCEPT"])
            print(f"fabric: {bridge} forwards within itself")
        if v6:
            six["FORWARD"] += forward6_rules(tag, bridge, internal=v6 == "6i")
            print(f"fabric: {bridge} forwards IPv6 within itself" + (", and nothing in or out" if v6 == "6i" else ""))
        # Both families whatever the network has: an IPv4-only bridge still carries the
        # engine machine's IPv6 link-local address.
        four["INPUT"] += input_rules(tag, bridge, 4)
        six["INPUT"] += input_rules(tag, bridge, 6)
        print(f"fabric: nothing enters the engine machine from {bridge} but IPv6 neighbour discovery")
    for flavour, wanted in ((binary or "iptables", four), (_ip6tables(binary), six)):
        _restore(flavour, run(flavour, "-w", "-S").stdout, wanted, tag)


def forward6_rules(tag: str, bridge: str, internal: bool) -> list[list[str]]:
    """IPv6 as Docker treats IPv4, in chain order: traffic that enters and leaves the same
    lab bridge passes (what a lab router forwards), and on an internal network nothing else
    enters or leaves it: no route out of the lab, and no traffic between two labs."""
    comment = ["-m", "comment", "--comment", tag]
    within = [["-i", bridge, "-o", bridge, *comment, "-j", "ACCEPT"]]
    return within + ([["-i", bridge, *comment, "-j", "DROP"], ["-o", bridge, *comment, "-j", "DROP"]]
                     if internal else [])


def fabric_del(tag: str) -> None:
    binary = _iptables()
    for flavour, chains in ((binary or "iptables", ("DOCKER-USER", "INPUT") if binary else ("INPUT",)),
                            (_ip6tables(binary), ("FORWARD", "INPUT"))):
        listing = run(flavour, "-w", "-S", check=False)
        if listing.returncode == 0 and any(comment_of(line) == tag for line in listing.stdout.splitlines()):
            _restore(flavour, listing.stdout, {chain: [] for chain in chains}, tag)
    print(f"fabric: removed rules tagged {tag}")


FEATURE_TRIALS = {
    "bridge": [["ip", "link", "add", "lcprobe-br", "type", "bridge"]],
    "veth": [["ip", "link", "add", "lcprobe-a", "type", "veth", "peer", "name", "lcprobe-b"]],
    "vxlan": [["ip", "link", "add", "lcprobe-vx", "type", "vxlan", "id", "42", "dstport", "4789"]],
    "netem": [["ip", "link", "set", "lo", "up"],
              ["tc", "qdisc", "add", "dev", "lo", "root", "netem", "delay", "1ms"]],
    "htb": [["tc", "qdisc", "replace", "dev", "lo", "root", "handle", "1:", "htb"]],
    "tbf": [["tc", "qdisc", "replace", "dev", "lo", "root", "tbf", "rate", "1mbit", "burst",
             "32kbit", "latency", "50ms"]],
    "ifb": [["ip", "link", "add", "lcprobe-ifb", "type", "ifb"]],
    "nftables": [["nft", "add", "table", "inet", "lcprobe"]],
    # What the impairment fallback needs beyond TBF: drops in an interface's egress hook,
    # and the xtables NFQUEUE target for the userspace delayer.
    "nft-egress": [["ip", "link", "add", "lcprobe-e", "type", "veth", "peer", "name", "lcprobe-f"],
                   ["nft", "add", "table", "netdev", "lcprobe"],
                   ["nft", "add", "chain", "netdev", "lcprobe", "out",
                    '{ type filter hook egress device "lcprobe-e" priority 0; }'],
                   ["nft", "add", "rule", "netdev", "lcprobe", "out", "numgen", "random", "mod", "100",
                    "<", "1", "drop"]],
    "u32": [["ip", "link", "set", "lo", "up"],
            ["tc", "qdisc", "replace", "dev", "lo", "root", "handle", "1:", "htb", "default", "1"],
            ["tc", "filter", "add", "dev", "lo", "parent", "1:", "protocol", "ip", "prio", "1", "u32",
             "match", "u32", "0", "0", "flowid", "1:2"]],
    "nfqueue": [["iptables-nft", "-t", "mangle", "-A", "POSTROUTING", "-j", "NFQUEUE",
                 "--queue-num", "1", "--queue-bypass"]],
}


def features() -> None:
    """Try each feature for real; the namespace is thrown away with the helper."""
    found = {}
    for name, trials in FEATURE_TRIALS.items():
        found[name] = all(run(*argv, check=False).returncode == 0 for argv in trials)
        run("tc", "qdisc", "del", "dev", "lo", "root", check=False)
    print(json.dumps(found))


def capture(where: str, file: str, seconds: str, expression: list[str]) -> None:
    interface = where
    if where[:1].isdigit() or ":" in where:   # an address, not an interface name
        interface = interface_holding(where)
    # exec timeout, which relays the SIGINT that ends the capture to tcpdump (so it flushes
    # the file) and sends one itself at the deadline; immediate mode, so packets seen just
    # before that SIGINT are not still in tcpdump's buffer.
    deadline = str(max(1, min(int(float(seconds)), 24 * 3600)))
    os.execvp("timeout", ["timeout", "--signal=INT", deadline, *tcpdump_argv(interface, file, expression)])


def tcpdump_argv(interface: str, file: str, expression: list[str]) -> list[str]:
    """tcpdump's argv: the filter comes after `--`, as one argument, so no word of it can
    be read as an option (-z would run a program, -w write elsewhere); tcpdump joins
    the words of its expression with spaces anyway."""
    argv = ["tcpdump", "-Z", "root", "-U", "--immediate-mode", "-n", "-s", "0", "-i", interface, "-w", file]
    filter_text = " ".join(word for word in expression if word)
    return argv + ["--", filter_text] if filter_text.strip() else argv


def interface_holding(address: str) -> str:
    for line in run("ip", "-o", "addr", "show").stdout.splitlines():
        words = line.split()
        if words[2] in ("inet", "inet6") and words[3].split("/")[0] == address:
            return words[1].split("@")[0]
    sys.exit(f"netadmin: no interface holds {address} (is the host disconnected?)")


def link(address: str, state: str) -> None:
    """Take the interface holding `address` down or up: a disconnection on a Swarm, where
    detaching a task from an overlay and attaching it again can hand it an address that
    another task holds. The address stays on the interface while it is down."""
    interface = interface_holding(address)
    run("ip", "link", "set", "dev", interface, state)
    print(f"{interface} ({address}) {state}")


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        sys.exit(__doc__)
    verb, args = argv[1], argv[2:]
    if verb == "routes":
        routes(args)
    elif verb == "enter" and len(args) == 1:
        enter(args[0])
    elif verb == "probe" and len(args) == 1:
        probe_hosts(args[0])
    elif verb == "fabric-add" and args:
        fabric_add(args[0], args[1:])
    elif verb == "fabric-del" and len(args) == 1:
        fabric_del(args[0])
    elif verb == "features":
        features()
    elif verb == "link" and len(args) == 2 and args[1] in ("up", "down"):
        link(*args)
    elif verb == "capture" and len(args) >= 3:
        capture(args[0], args[1], args[2], args[3:])
    else:
        sys.exit(__doc__)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
