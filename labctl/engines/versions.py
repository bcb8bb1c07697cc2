"""Which engine labctl talks to, and where it behaves differently in a way labctl depends on.

labctl speaks whatever API version the engine speaks (it negotiates), so a newer engine is
no difference in itself. What is:

- the API floor: Docker 29 refuses clients below API 1.44. labctl's own client negotiates,
  but `docker stack deploy` (a Swarm lab) runs this machine's docker CLI, which must speak
  at least the engine's floor;
- the firewall backend: the fabric (services/netadmin.py) lets routed lab traffic cross an
  internal network by an ACCEPT in Docker's DOCKER-USER chain, which iptables evaluates
  before Docker's own (Docker 28's DOCKER-FORWARD, DOCKER-BRIDGE, DOCKER-CT and
  DOCKER-INTERNAL chains, and its raw-table filtering of traffic that does not enter from a
  container's own bridge, change nothing for lab traffic, which never leaves its bridges).
  Docker 29's optional nftables backend has no DOCKER-USER, and an nftables accept is not
  final, so the fabric cannot open that path there. Its INPUT rules, which keep a lab off
  the engine machine's own services, are separate base chains and hold either way;
- engines older than 20.10 (API 1.41), and the ones labctl has not been tested on.

The reading (`read_facts`, `differences`) works on the dicts the engine's /version and /info
answer, so it is tested with recorded ones; `engine_report` asks a client for them.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from typing import Any, Iterable

OLDEST_API = (1, 41)          # Docker 20.10, the oldest engine labctl supports
OLDEST_RELEASE = "20.10"
IPTABLES = "iptables"


def api_tuple(text: str | None) -> tuple[int, int] | None:
    """'1.44' as (1, 44); None for anything else."""
    match = re.fullmatch(r"\s*(\d+)\.(\d+)\s*", text or "")
    return (int(match.group(1)), int(match.group(2))) if match else None


@dataclass(frozen=True)
class EngineFacts:
    """What an engine says of itself that labctl depends on."""
    version: str                 # its release, as it gives it: 20.10.24+dfsg1, 29.0.1
    api: str                     # the newest API version it speaks
    min_api: str                 # the oldest it accepts
    firewall: str                # iptables, nftables, iptables+firewalld...
    firewall_reported: bool      # False: the engine does not say (before Docker 28), so iptables
    product: str = "Docker"      # Docker, Docker Desktop, Podman
    rootless: bool = False

    @property
    def nftables(self) -> bool:
        return "nftables" in self.firewall

    @property
    def summary(self) -> str:
        floor = f", floor {self.min_api}" if self.min_api else ""
        firewall = self.firewall if self.firewall_reported else f"{IPTABLES} (the engine does not say)"
        rootless = ", rootless" if self.rootless else ""
        return f"{self.product} {self.version} (API {self.api}{floor}{rootless}), firewall {firewall}"


def read_facts(version: dict[str, Any], info: dict[str, Any]) -> EngineFacts:
    """The facts from an engine's /version and /info answers."""
    backend = info.get("FirewallBackend") or {}
    driver = str(backend.get("Driver") or "") if isinstance(backend, dict) else ""
    components = [str(c.get("Name", "")) for c in version.get("Components") or [] if isinstance(c, dict)]
    if any("podman" in name.lower() for name in components):
        product = "Podman"
    elif "docker desktop" in str(info.get("OperatingSystem", "")).lower():
        product = "Docker Desktop"
    else:
        product = "Docker"
    rootless = any("name=rootless" in str(option) for option in info.get("SecurityOptions") or [])
    return EngineFacts(version=str(version.get("Version") or info.get("ServerVersion") or "?"),
                       api=str(version.get("ApiVersion") or "?"),
                       min_api=str(version.get("MinAPIVersion") or ""),
                       firewall=driver or IPTABLES, firewall_reported=bool(driver),
                       product=product, rootless=rootless)


@dataclass(frozen=True)
class Difference:
    """One way this engine differs from what labctl is built and tested on, in one line:
    what differs, and what labctl does about it (or what to do)."""
    line: str
    breaks: bool = False       # labctl cannot work on this engine as it is
    only_swarm: bool = False   # ...for Swarm labs only


def differences(facts: EngineFacts, cli_api: str | None = None, stack_deploy: bool = True) -> list[Difference]:
    """What differs on this engine. `cli_api` is the newest API version this machine's
    docker CLI speaks (None: no CLI, or not asked); `stack_deploy`: whether the lab's engine
    needs the CLI (a Swarm)."""
    found: list[Difference] = []
    api = api_tuple(facts.api)
    if api is not None and api < OLDEST_API:
        found.append(Difference(
            f"{facts.product} {facts.version} speaks API {facts.api}, older than Docker {OLDEST_RELEASE} "
            f"(API {OLDEST_API[0]}.{OLDEST_API[1]}), the oldest labctl supports: upgrade the engine", breaks=True))
    floor, cli = api_tuple(facts.min_api), api_tuple(cli_api)
    if stack_deploy and floor is not None and cli is not None and cli < floor:
        found.append(Difference(
            f"this machine's docker CLI speaks API {cli_api}, below the engine's floor {facts.min_api}: "
            "it would refuse `docker stack deploy`, which a Swarm lab needs; install a docker CLI "
            f"that speaks API {facts.min_api} or later", breaks=True, only_swarm=True))
    if facts.nftables:
        found.append(Difference(
            f"firewall {facts.firewall} has no DOCKER-USER chain, so labctl cannot let routed lab "
            "traffic cross an internal network (traffic within one network, and the isolation from "
            'the engine machine, are unaffected); for labs with routers run the engine with '
            '"firewall-backend": "iptables", the default'))
    if facts.rootless:
        found.append(Difference("a rootless engine: untested with labctl (its bridges, and the fabric's "
                                "rules, live in RootlessKit's network namespace)"))
    if facts.product != "Docker":
        found.append(Difference(f"{facts.product}: untested with labctl, which is tested on Docker Engine"))
    return found


def verdict(facts: EngineFacts, found: Iterable[Difference]) -> str:
    """The doctor's one line: supported, or what differs."""
    lines = [difference.line for difference in found]
    if not lines:
        return f"{facts.summary}: supported"
    return f"{facts.summary}: " + "; ".join(lines)


# -- asking an engine -----------------------------------------------------------------------

def engine_facts(client: Any) -> EngineFacts:
    """The facts of the engine `client` talks to (a docker.DockerClient)."""
    return read_facts(client.version(), client.info())


def cli_api_version() -> str | None:
    """The newest API version this machine's docker CLI speaks, asked without reaching any
    engine (DOCKER_HOST pointed nowhere, so the CLI reports its own maximum, not what it
    negotiated); None without a CLI."""
    docker_cli = shutil.which("docker")
    if docker_cli is None:
        return None
    environment = {**os.environ, "DOCKER_HOST": "unix:///dev/null"}
    environment.pop("DOCKER_CONTEXT", None)
    try:
        result = subprocess.run([docker_cli, "version", "--format", "{{.Client.APIVersion}}"],
                                capture_output=True, text=True, timeout=20, env=environment)
    except (OSError, subprocess.TimeoutExpired):
        return None
    first = (result.stdout.strip().splitlines() or [""])[0]
    return first if api_tuple(first) else None


def engine_notes(clients: Iterable[Any], stack_deploy: bool) -> list[str]:
    """One line per way the engines (a Swarm's machines, or one engine) differ, for `up`;
    nothing where all is as labctl expects."""
    notes: list[str] = []
    cli = cli_api_version() if stack_deploy else None
    for client in clients:
        for difference in differences(engine_facts(client), cli, stack_deploy):
            if difference.line not in notes:
                notes.append(difference.line)
    return notes
