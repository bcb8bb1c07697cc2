"""What every engine offers the operations above it: run a rendered lab, report its
containers' states, reach its hosts. `Engine` is the interface; the kinds (Compose, Swarm,
Compose over SSH) are declared in kinds/ and made by labctl.engines.factory."""

from __future__ import annotations

import queue
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Protocol

from ..errors import LabError
from ..model.topology import Topology
from ..names import FOLDER_LABEL, LAB_LABEL

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
class ProbeJob:
    """One client host's batch for labctl's probe: its specs (base64 JSON, as the probe
    takes them) and the credentials it presents and trusts, as (file name, content, mode)
    for its PKI folder."""
    payload: str
    credentials: list[tuple[str, bytes, int]]
    seconds: float = 300.0   # how long its probe may take, at most, before it is killed


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
    health: str | None  # the engine's healthcheck: None, as labctl declares none (status probes instead)
    exit_code: int | None
    host: str | None = None
    machine: str | None = None  # on a Swarm: the machine it runs on
    reason: str = ""            # why its state is unknown (its machine does not answer)

    @property
    def long_running(self) -> bool:
        return self.role in LONG_RUNNING

    @property
    def ready(self) -> bool:
        """Running (and not failing a healthcheck of the engine's), or done with success.
        `up` confirms a program's readiness itself (labctl.engines.readiness), and `status`
        asks it again when run (labctl.ops.status)."""
        if self.long_running:
            return self.state == "running" and self.health != "unhealthy"
        return self.state == "exited" and self.exit_code == 0

    @property
    def failed(self) -> bool:
        if self.long_running:
            return self.state in ("exited", "dead") or self.health == "unhealthy"
        return self.state in ("exited", "dead") and self.exit_code not in (0, None)


@dataclass
class LabSummary:
    """A lab as an engine holds it, found by its labels alone (its lab file is not read):
    `labctl ls` lists these, `labctl down NAME` removes one."""
    name: str
    folder: str | None          # where it was brought up from, when its labels say
    hosts_ready: int
    hosts_total: int
    created: float | None       # when its first resource was made (seconds since the epoch)
    resources: int              # everything of it the engine holds: containers, networks, ...


# One resource of some lab: its labels, when it was made, and whether it is a host that is
# ready (None: not a host).
Found = tuple[dict[str, str], float | None, bool | None]


def summarize(found: Iterable[Found]) -> list[LabSummary]:
    """A summary per lab among the resources found, by name."""
    labs: dict[str, LabSummary] = {}
    for labels, created, ready in found:
        name = labels.get(LAB_LABEL)
        if not name:
            continue
        lab = labs.setdefault(name, LabSummary(name, None, 0, 0, None, 0))
        lab.resources += 1
        lab.folder = lab.folder or labels.get(FOLDER_LABEL) or None
        if created is not None:
            lab.created = created if lab.created is None else min(lab.created, created)
        if ready is not None:
            lab.hosts_total += 1
            lab.hosts_ready += ready
    return sorted(labs.values(), key=lambda lab: lab.name)


_STAMP = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.\d+)?(Z|[+-]\d\d:\d\d)?")


def epoch(stamp: Any) -> float | None:
    """Seconds since the epoch of an engine's time stamp: a number, or an RFC 3339 text
    (whose nanoseconds Python's own parser refuses before 3.11)."""
    if isinstance(stamp, (int, float)) and not isinstance(stamp, bool):
        return float(stamp)
    match = _STAMP.match(stamp) if isinstance(stamp, str) else None
    if match is None:
        return None
    when = datetime.strptime(match.group(1), "%Y-%m-%dT%H:%M:%S").replace(tzinfo=timezone.utc)
    offset = match.group(2) or "Z"
    if offset != "Z":
        sign = -1 if offset[0] == "-" else 1
        when -= sign * timedelta(hours=int(offset[1:3]), minutes=int(offset[4:6]))
    return when.timestamp()


@dataclass(frozen=True)
class EngineEvent:
    """What the engine did to one of a lab's hosts or networks, from its own event stream."""
    kind: str       # host | network
    action: str     # host: created started exited restarting stopped paused unpaused removed oom;
                    # network: created removed connected disconnected
    subject: str    # the lab's name for the host or network
    time: float     # seconds since the epoch
    detail: dict[str, Any] = field(default_factory=dict)   # exited: exit_code; (dis)connected: host


class EngineEvents(Protocol):
    """A lab's engine events as they happen, until closed (from any thread)."""
    def __iter__(self) -> Iterator[EngineEvent]: ...
    def close(self) -> None: ...


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
    def probe_hosts(self, topology: Topology, image: str,
                    jobs: dict[str, ProbeJob]) -> dict[str, ExecResult | LabError]: ...
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
    def differences(self) -> list[str]: ...
    def labs_from(self, source: str) -> set[str]: ...
    def labs(self) -> list[LabSummary]: ...
    def snapshot(self, topology: Topology) -> set[str]: ...
    def discard(self, topology: Topology, kept: set[str]) -> None: ...
    def unreachable_hosts(self, topology: Topology) -> dict[str, str]: ...
    def events(self, topology: Topology) -> EngineEvents: ...




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


def put_last(waiting: queue.Queue, item: Any) -> None:
    """Put `item` on a bounded queue, dropping the oldest entries to make room: the mark
    that a stream has ended must reach its reader even when nobody has been reading."""
    while True:
        try:
            waiting.put_nowait(item)
            return
        except queue.Full:
            try:
                waiting.get_nowait()
            except queue.Empty:
                pass
