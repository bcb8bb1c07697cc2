"""What every engine offers the operations above it: run a rendered lab, report its
containers' states, reach its hosts. `Engine` is the interface; the kinds (Compose, Swarm,
Compose over SSH) are declared in kinds/ and made by labctl.engines.factory."""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any, Callable, Iterator, Protocol

from ..model.topology import Topology

Progress = Callable[[str], None]
READY_TIMEOUT = 120.0
LONG_RUNNING = ("host", "net")  # roles that run for the lab's life; the other helpers exit


@dataclass
class ExecResult:
    exit_code: int
    stdout: bytes
    stderr: bytes

    @property
    def last_line(self) -> str:
        """What a failed command said last (stderr, else stdout), or its exit code."""
        lines = (self.stderr or self.stdout).decode("utf-8", "replace").strip().splitlines()
        return lines[-1] if lines else f"exit code {self.exit_code}"


@dataclass
class Terminal:
    """An interactive program on a host: one connection for its terminal's input and
    output, a way to tell it the terminal's size (rows, columns), and its exit code once
    it ends."""
    connection: Any                       # a socket, or an SSH channel
    resize: Callable[[int, int], None]
    exit_code: Callable[[], int]


@dataclass
class HostState:
    """One container of a lab: a host, or a helper (role routes/fabric/net)."""
    name: str           # lab host name, or the helper's service name
    role: str           # host | routes | fabric | net
    container: str
    state: str          # running | exited | created | paused | restarting | dead
    health: str | None  # healthy | unhealthy | starting | None (no healthcheck)
    exit_code: int | None
    host: str | None = None
    machine: str | None = None  # on a Swarm: the machine it runs on
    reason: str = ""            # why its state is unknown (its machine does not answer)

    @property
    def long_running(self) -> bool:
        return self.role in LONG_RUNNING

    @property
    def ready(self) -> bool:
        """Running (and not failing its healthcheck), or done with success. `up` confirms
        a program's readiness itself (labctl.engines.readiness); health is for status."""
        if self.long_running:
            return self.state == "running" and self.health != "unhealthy"
        return self.state == "exited" and self.exit_code == 0

    @property
    def failed(self) -> bool:
        if self.long_running:
            return self.state in ("exited", "dead") or self.health == "unhealthy"
        return self.state in ("exited", "dead") and self.exit_code not in (0, None)


class Engine(Protocol):
    image_client: Any  # the docker client where the lab's images are built
    last_exit_code: int  # of the last exec_stream, once its stream is exhausted
    def deploy(self, topology: Topology, document: Path, progress: Progress,
               timeout: float = READY_TIMEOUT) -> None: ...
    def destroy(self, topology: Topology, progress: Progress) -> dict[str, int]: ...
    def states(self, topology: Topology) -> list[HostState]: ...
    def exec(self, topology: Topology, host: str, argv: list[str]) -> ExecResult: ...
    def exec_bounded(self, topology: Topology, host: str, argv: list[str], limit: int,
                     seconds: float) -> tuple[ExecResult, bool]: ...
    def exec_stream(self, topology: Topology, host: str, argv: list[str]) -> Iterator[tuple[bytes | None, bytes | None]]: ...
    def terminal(self, topology: Topology, host: str, argv: list[str], environment: dict[str, str]) -> Terminal: ...
    def logs(self, topology: Topology, host: str, follow: bool = False, tail: int | str = "all",
             since: float | None = None) -> Iterator[bytes]: ...
    def run_in_namespace(self, topology: Topology, host: str | None, image: str, argv: list[str],
                         cap_add: list[str] | None = None,
                         files: list[tuple[str, bytes, int]] | None = None) -> ExecResult: ...
    def update(self, topology: Topology, document: Path, services: list[str], progress: Progress,
               recreate: bool = False, timeout: float = READY_TIMEOUT) -> None: ...
    def remove(self, topology: Topology, names: list[str]) -> None: ...
    def wait_ready(self, topology: Topology, progress: Progress, timeout: float = READY_TIMEOUT,
                   only: set[str] | None = None) -> None: ...
    def helper_logs(self, topology: Topology, name: str) -> str: ...
    def act(self, topology: Topology, host: str, action: str) -> None: ...
    def attached(self, topology: Topology, host: str) -> list[str]: ...
    def disconnect(self, topology: Topology, host: str, network: str) -> None: ...
    def connect(self, topology: Topology, host: str, network: str) -> None: ...
    def start_helper(self, topology: Topology, host: str | None, image: str, argv: list[str],
                     cap_add: list[str], ready_text: str, timeout: float = 20.0) -> str: ...
    def stop_helper(self, helper: str, path: str, signal_name: str = "SIGINT") -> tuple[str, bytes]: ...
    def addresses(self, topology: Topology) -> dict[str, dict[str, str]]: ...
    def identity(self) -> str: ...
    def labs_from(self, source: str) -> set[str]: ...
    def snapshot(self, topology: Topology) -> set[str]: ...
    def discard(self, topology: Topology, kept: set[str]) -> None: ...
    def unreachable_hosts(self, topology: Topology) -> dict[str, str]: ...




def bind_addresses(topology: Topology, engine: Engine) -> Topology:
    """Take the addresses the engine assigned (a Swarm's) into the topology, so checks,
    transcripts and status use the real ones."""
    assigned = engine.addresses(topology)
    for host, networks in assigned.items():
        if host not in topology.hosts:
            continue
        for attachment in topology.hosts[host].attachments:
            if attachment.network in networks:
                attachment.address = IPv4Address(networks[attachment.network])
    topology.addresses_bound = topology.addresses_bound or bool(assigned)
    return topology
