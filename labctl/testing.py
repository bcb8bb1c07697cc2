"""The running lab as tests see it (`RunningLab`, whose checks give `CheckResult`s), and
the labs a pytest run brings up (`LabRegistry`).

The pytest plugin (labctl.pytest_plugin) loads this module only once a test uses a lab,
so a pytest run that uses none never imports docker, paramiko or cryptography.

Under pytest-xdist each worker (PYTEST_XDIST_WORKER=gw0, gw1, ...) runs a lab instance of
its own: the lab's name with the worker's as suffix (`campus-gw0`), and subnets moved
apart the way `labctl grade --parallel` moves its instances, from the other end of the
range (see `worker_slot`). Each worker holds its own instance's lock and reaper, and the
workers take turns on the engine (see `WorkerTurns`).

    python -m labctl.testing down LAB_FILE --worker gw0   takes down an instance a run kept
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import os
import re
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ContextManager

from .assets import host_tag
from .checks.kinds import check_kinds
from .checks.result import CheckResult
from .checks.spec import CheckParser, CheckSpec
from .engines.base import Engine, ExecResult
from .engines.factory import choose, open_engine, read_lab
from .errors import LabError
from .labfile.load import Lab
from .model.addressing import relocate
from .model.topology import Topology
from .model.yamlsource import Source
from .ops import lifecycle
from .ops.checks import read_transcript, run_checks
from .ops.lock import hold, lock_folder, open_lock
from .ops.reaper import RELEASE, Reaper

__all__ = ["CheckResult", "ExecResult", "LabRegistry", "RunningLab", "WorkerTurns",
           "worker_instance", "worker_slot"]

Progress = Callable[[str], None]
WORKER_VARIABLE = "PYTEST_XDIST_WORKER"
WORKER_PATTERN = re.compile(r"gw(\d{1,3})")
# relocate() adds 7*slot (mod 256) to the second octet. `labctl grade --parallel K` takes
# slots 1..K; workers take 255, 254, ... (-7, -14, ... apart from the lab's own subnets),
# so the two meet only past 127 of each.
TOP_SLOT = 255
MAX_WORKERS = 127


def _progress(message: str) -> None:
    print(f"labctl: {message}", file=sys.stderr, flush=True)


# -- a worker's instance ------------------------------------------------------------------

def worker_slot(worker: str) -> int:
    """The relocation slot of pytest-xdist worker `worker` ("gw0" -> 255, "gw1" -> 254, ...)."""
    match = WORKER_PATTERN.fullmatch(worker)
    if match is None or int(match.group(1)) >= MAX_WORKERS:
        raise LabError(f"pytest-xdist worker {worker!r}: labctl gives lab instances to workers "
                       f"gw0 to gw{MAX_WORKERS - 1} only")
    return TOP_SLOT - int(match.group(1))


def worker_instance(lab: Lab, worker: str) -> None:
    """Make `lab` (as read from its file) worker `worker`'s instance of it: named
    `<lab>-<worker>`, on subnets of its own. Its state folder and Compose file follow the
    name, so instances never share them."""
    slot = worker_slot(worker)
    try:
        relocate(lab.topology, slot)
    except LabError as exc:
        raise LabError(f"under pytest-xdist each worker runs its own copy of lab '{lab.name}' on "
                       f"subnets moved the way `labctl grade --parallel` moves its copies: {exc}") from None
    lab.topology.name = f"{lab.topology.name}-{worker}"


class WorkerTurns:
    """pytest-xdist workers' labs come up and go down one at a time, and never while another
    worker's lab is checking: while Docker creates or removes a network it rewrites the
    machine's forwarding rules, and another lab's routed packets are dropped meanwhile (the
    reason for `labctl grade`'s turns). Workers are processes, so the turns are two file
    locks per engine: checks share `main`, a change holds it alone, and `gate` (held while
    waiting for `main`) keeps a stream of checks from starving a change."""

    def __init__(self, engine_identity: str) -> None:
        key = hashlib.sha256(engine_identity.encode()).hexdigest()[:16]
        folder = lock_folder()
        self.main = folder / f"pytest-xdist-{key}.turns"
        self.gate = folder / f"pytest-xdist-{key}.gate"

    @contextmanager
    def _turn(self, exclusive: bool) -> Iterator[None]:
        gate = open_lock(self.gate)
        try:
            main = open_lock(self.main)
            try:
                fcntl.flock(gate, fcntl.LOCK_EX)
                try:
                    fcntl.flock(main, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
                finally:
                    fcntl.flock(gate, fcntl.LOCK_UN)
                yield
            finally:
                os.close(main)   # closing releases the lock
        finally:
            os.close(gate)

    def change(self) -> ContextManager[None]:
        """Around bringing a lab up or down: alone on the engine."""
        return self._turn(exclusive=True)

    def check(self) -> ContextManager[None]:
        """Around checks and commands in a lab: beside the others', never during a change."""
        return self._turn(exclusive=False)


# -- the running lab ----------------------------------------------------------------------

class RunningLab:
    """A running lab, as tests see it: what the `lab` fixture gives."""

    lab: Lab
    """The lab file as read (`.topology`, `.checks`, `.scenarios`); under pytest-xdist, this
    worker's instance of it."""
    topology: Topology
    """The lab's hosts, networks and addresses, as the engine runs them."""
    engine: Engine
    """The engine the lab runs on (Compose, a Swarm, or an engine over SSH)."""
    image: str
    """The tag of the host image labctl's probe and helpers run from."""

    def __init__(self, lab: Lab, engine: Engine, turns: WorkerTurns | None = None) -> None:
        self.lab = lab
        self.topology = lab.topology
        self.engine = engine
        self.image = host_tag()
        self._turns = turns

    def __repr__(self) -> str:
        return f"<RunningLab {self.name!r} from {self.file}>"

    @property
    def name(self) -> str:
        """The lab's name on the engine: the file's `name:`, with `-gw0`... under pytest-xdist."""
        return self.topology.name

    @property
    def file(self) -> Path:
        """The lab file it was read from."""
        return self.topology.file

    @property
    def hosts(self) -> list[str]:
        """The names of the lab's hosts, in the order the lab file gives them."""
        return list(self.topology.hosts)

    def _checking(self) -> ContextManager[None]:
        return self._turns.check() if self._turns else nullcontext()

    def exec(self, host: str, command: str | list[str]) -> ExecResult:
        """Run a command on `host` and wait for it: a string goes through `sh -c`, a list
        is the argv itself. Gives the exit code and the output (`.exit_code`, `.stdout`,
        `.stderr` as bytes, `.last_line`); a command that fails is no error."""
        if host not in self.topology.hosts:
            raise self.topology.unknown_host(host)
        argv = ["sh", "-c", command] if isinstance(command, str) else list(command)
        with self._checking():
            return self.engine.exec(self.topology, host, argv)

    def check(self, name: str) -> CheckResult:
        """Run the lab file's check called `name` and give its result; LabError if the
        file has no such check."""
        [spec] = lifecycle.select_checks(self.lab.checks, [name], None)
        return self.run([spec])[0]

    def probe(self, spec: dict[str, Any] | None = None, **fields: Any) -> CheckResult:
        """Run a check written here, in the lab file's vocabulary, and give its result:
        `lab.probe({"from": "alice", "to": "web:8080", "http": {"path": "/health"}})`, or
        with keywords, `from_` standing for `from`:
        `lab.probe(from_="alice", to="web:8080", http={"path": "/health"})`.
        A spec the vocabulary refuses raises LabFileError, naming the key."""
        raw = dict(spec or {})
        raw.update({("from" if key == "from_" else key): value for key, value in fields.items()})
        raw.setdefault("name", "probe")
        source = Source("<probe>", raw)
        parser = CheckParser(source, self.topology, check_kinds())
        check = parser.parse(raw, ())
        parser.link([check], self.lab.checks, (), indexed=False)
        return self.run([check])[0]

    def run(self, checks: Sequence[CheckSpec] | None = None) -> list[CheckResult]:
        """Run these checks (default: every check of the lab file) in one batch, as
        `labctl check` does, and give their results in the same order."""
        selected = list(self.lab.checks if checks is None else checks)
        with self._checking():
            return run_checks(self.topology, self.engine, selected, self.image)

    def transcript(self, host: str) -> list[dict[str, Any]]:
        """What `host`'s built-in servers have served since it started, one dict per
        exchange, oldest first: `time`, `service`, `protocol`, `port`, `peer`, `peer_port`,
        `bytes_in`, `bytes_out`, `sha256` and `preview` of what came in, and what the
        service adds (an HTTP request's path, a TLS client's subject...). Lines of the
        host's output that are not entries are skipped."""
        if host not in self.topology.hosts:
            raise self.topology.unknown_host(host)
        return read_transcript(self.topology, self.engine, host)


# -- the labs of a run --------------------------------------------------------------------

@dataclass
class _Entry:
    handle: RunningLab
    started: bool                 # this run brought it up (else it was running before)
    held: ExitStack = field(default_factory=ExitStack)   # its lock and reaper, while up
    users: int = 0


class LabRegistry:
    """The labs of one pytest run (or xdist worker), one per lab file. `get` gives the
    running lab, bringing it up if needed; `release` says a user is done with it, and the
    last one's release takes down a lab this run brought up (unless `keep`); `close` takes
    down all that are left. A lab it brings up is held (no other labctl changes it
    meanwhile) and watched by a reaper that takes it down if the process dies without
    doing so, unless `keep`. A lab that was running before is used and left running."""

    def __init__(self, keep: bool = False, worker: str | None = None, progress: Progress = _progress) -> None:
        self.keep = keep
        self.worker = worker
        self.progress = progress
        self.entries: dict[Path, _Entry] = {}
        self._turns: dict[str, WorkerTurns] = {}

    def get(self, path: Path) -> RunningLab:
        """The running lab of the lab file at `path`, brought up if this run has not yet."""
        path = path.resolve()
        entry = self.entries.get(path)
        if entry is None:
            entry = self.entries[path] = self._open(path)
        entry.users += 1
        return entry.handle

    def release(self, path: Path) -> None:
        """A user of `get(path)` is done: once none is left, the lab goes down if this run
        brought it up, unless it keeps labs."""
        path = path.resolve()
        entry = self.entries.get(path)
        if entry is None:
            return
        entry.users -= 1
        if entry.users <= 0 and entry.started and not self.keep:
            del self.entries[path]
            self._down(entry)

    def close(self) -> None:
        """Take down every lab this run brought up (or say each is kept)."""
        errors: list[Exception] = []
        while self.entries:
            _path, entry = self.entries.popitem()
            if not entry.started:
                continue
            if self.keep:
                entry.held.close()
                self.progress(f"lab '{entry.handle.name}' is kept running (--keep-lab); "
                              f"{self._down_command(entry.handle)} removes it")
                continue
            try:
                self._down(entry)
            except Exception as exc:   # the other labs go down all the same
                errors.append(exc)
        if errors:
            raise errors[0]

    def _down_command(self, handle: RunningLab) -> str:
        if self.worker:
            return f"'python -m labctl.testing down {handle.file} --worker {self.worker}'"
        return f"'labctl down {handle.file}'"

    def _open(self, path: Path) -> _Entry:
        choice = choose(lab_file=path)
        lab = read_lab(path, choice)
        if self.worker:
            worker_instance(lab, self.worker)
        topology = lab.topology
        engine = open_engine(topology, choice)
        turns = self._turns_for(engine)
        handle = RunningLab(lab, engine, turns)
        running = [s for s in engine.states(topology) if s.role == "host" and s.ready]
        if len(running) == len(topology.hosts):
            self.progress(f"using lab '{topology.name}', already running; it is left running")
            return _Entry(handle, started=False)
        entry = _Entry(handle, started=True)
        with ExitStack() as undo:
            undo.push(entry.held)
            entry.held.enter_context(hold(topology, engine, "pytest", self.progress, for_children=True))
            if not self.keep:
                command = (("labctl.testing", "reap", "--worker", self.worker) if self.worker
                           else ("labctl.ops.reaper",))
                reaper = Reaper(path, choice, topology.state_folder / "reaper.log", command)
                entry.held.callback(reaper.release)
            with turns.change() if turns else nullcontext():
                lifecycle.up(topology, engine, self.progress)
            undo.pop_all()
        return entry

    def _down(self, entry: _Entry) -> None:
        handle = entry.handle
        try:
            with handle._turns.change() if handle._turns else nullcontext():
                lifecycle.down(handle.topology, handle.engine, self.progress)
        finally:
            entry.held.close()

    def _turns_for(self, engine: Engine) -> WorkerTurns | None:
        if not self.worker:
            return None
        identity = engine.identity()
        if identity not in self._turns:
            self._turns[identity] = WorkerTurns(identity)
        return self._turns[identity]


# -- python -m labctl.testing -------------------------------------------------------------

def _log(message: str) -> None:
    print(f"{time.strftime('%Y-%m-%d %H:%M:%S')} labctl.testing {os.getpid()}: {message}", flush=True)


def main(argv: list[str] | None = None) -> int:
    """`down LAB_FILE --worker gwN`: take that worker's instance down. `reap ...`: the
    reaper of a worker's instance (started by the run, see labctl.ops.reaper): wait for
    its owner to release it or die, and in the latter case take the instance down."""
    parser = argparse.ArgumentParser(prog="python -m labctl.testing")
    parser.add_argument("action", choices=["down", "reap"])
    parser.add_argument("lab_file")
    parser.add_argument("--worker", required=True, help="the pytest-xdist worker, e.g. gw0")
    parser.add_argument("--engine")
    parser.add_argument("--cluster")
    args = parser.parse_args(argv)
    say: Progress = _log if args.action == "reap" else _progress
    if args.action == "reap":
        say(f"watching {args.worker}'s instance of {args.lab_file} for its owner (pid {os.getppid()})")
        if sys.stdin.buffer.read().endswith(RELEASE):   # returns when the owner closes its end, or dies
            say("released by its owner; leaving the lab alone")
            return 0
        say("its owner is gone without taking the lab down; taking it down")
    try:
        choice = choose(args.engine, args.cluster, Path(args.lab_file))
        lab = read_lab(args.lab_file, choice)
        worker_instance(lab, args.worker)
        engine = open_engine(lab.topology, choice)
        with hold(lab.topology, engine, args.action, say):
            removed = lifecycle.down(lab.topology, engine, say)
    except LabError as exc:
        say(f"could not take the lab down: {exc}")
        return 1
    except Exception as exc:
        if args.action == "down":
            raise
        # The reaper's log is all it has to say it failed.
        say(f"could not take the lab down: {exc.__class__.__name__}: {exc}")
        return 1
    say(f"lab '{lab.name}' is down: {removed}")
    return 0

if __name__ == "__main__":
    sys.exit(main())
