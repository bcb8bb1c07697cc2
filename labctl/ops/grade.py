"""`labctl grade SUBMISSIONS/`: one lab, run against each student's folder in turn.

Each submission is a folder of a student's files; the lab mounts them from `./submission/`
where it says (`files: ["./submission/server.py:/exercise/server.py"]`). For each, labctl
copies the lab folder to a scratch folder with the student's files as its `submission/`,
brings it up, runs its checks, and takes it down whatever happened. A submission that
never becomes ready, crashes, hangs or floods its output scores what its checks score
(nothing, if the lab never came up), and the run goes on. `parallel` runs that many at
once, each under a name and subnets of its own."""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from ..checks.result import CheckResult, reason_with_hint, score, total
from ..engines.base import Engine
from ..errors import LabError
from ..labfile.load import Lab
from ..model.addressing import relocate
from ..progress import Counted
from .lifecycle import check, down, up

SUBMISSION = "submission"
LEFT_OUT = {"compose", ".labctl", SUBMISSION, "__pycache__"}


@dataclass
class Graded:
    student: str
    score: float = 0.0
    points: float = 0.0
    passed: int = 0
    failed: int = 0
    seconds: float = 0.0
    failures: list[tuple[str, str]] = field(default_factory=list)   # (check, reason)
    error: str = ""                                                  # why the lab never ran
    machines: list[str] = field(default_factory=list)                # where its hosts ran (a Swarm's)

    @property
    def summary(self) -> str:
        return self.error or "; ".join(f"{name}: {reason}" for name, reason in self.failures)


def submissions(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise LabError(f"{folder} is not a folder of submissions (one folder per student)")
    found = sorted(item for item in folder.iterdir() if item.is_dir() and not item.name.startswith("."))
    if not found:
        raise LabError(f"{folder} holds no submission folders (one folder per student)")
    return found


def _instance(lab_folder: Path, submission: Path, scratch: Path) -> Path:
    """The lab folder with the student's files as its submission/; symlinks are not followed."""
    for item in lab_folder.iterdir():
        if item.name in LEFT_OUT:
            continue
        if item.is_dir() and not item.is_symlink():
            shutil.copytree(item, scratch / item.name, symlinks=True)
        elif item.is_file() and not item.is_symlink():
            shutil.copy2(item, scratch / item.name)
    shutil.copytree(submission, scratch / SUBMISSION, symlinks=True)
    return scratch / "lab.yaml"


class Turns:
    """Instances check side by side, but come up and go down alone. While Docker creates or
    removes a network it rewrites the forwarding rules, and for that moment another lab's
    routed packets are dropped; and on an engine elsewhere, instances share the lab image
    labctl copied there, which one's `down` must not remove while another starts on it."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._checking = 0
        self._changing = False

    @contextmanager
    def change(self):
        with self._condition:
            self._condition.wait_for(lambda: not self._changing and not self._checking)
            self._changing = True
        try:
            yield
        finally:
            with self._condition:
                self._changing = False
                self._condition.notify_all()

    @contextmanager
    def check(self):
        with self._condition:
            self._condition.wait_for(lambda: not self._changing)
            self._checking += 1
        try:
            yield
        finally:
            with self._condition:
                self._checking -= 1
                self._condition.notify_all()


def grade_one(read: Callable[[Path], Lab], open_engine: Callable[[Lab], Engine], lab_file: Path,
              submission: Path, slot: int, timeout: float, progress: Callable[[str], None],
              scratch: Path, turns: Turns, finished: list) -> Graded:
    """One student's run in `scratch`, taking its turns (see Turns)."""
    graded = Graded(submission.name)
    started = time.monotonic()
    try:
        lab = read(_instance(lab_file.parent, submission, scratch))
        # Never the lab's own name or subnets: it may be running beside the grading.
        relocate(lab.topology, slot + 1)
        lab.topology.name = f"{lab.topology.name}-grade{slot + 1}"
        engine = open_engine(lab)
    except LabError as exc:
        graded.error = f"the lab could not be read with this submission: {exc}"
        return graded
    quiet: Callable[[str], None] = lambda message: None   # noqa: E731  (per-student noise)
    try:
        with turns.change():
            up(lab.topology, engine, quiet, timeout=timeout)
        try:
            graded.machines = sorted({state.machine for state in engine.states(lab.topology)
                                      if state.role == "host" and state.machine})
        except LabError:
            pass   # where it ran is a note in the margin, never a reason to stop
        with turns.check():
            results, _seconds = check(lab, engine)
        _score(graded, results)
    except LabError as exc:
        graded.error = f"never ready: {exc}"
        graded.points = sum(c.points for c in lab.checks)
    finally:
        try:
            with turns.change():
                down(lab.topology, engine, quiet)
        except LabError as exc:
            progress(f"{submission.name}: down failed: {exc}")
        finished.append((lab, engine))
    graded.seconds = time.monotonic() - started
    return graded


def _score(graded: Graded, results: list[CheckResult]) -> None:
    graded.score, graded.points = score(results), total(results)
    graded.passed = sum(result.passed for result in results)
    graded.failed = len(results) - graded.passed
    graded.failures = [(result.name, reason_with_hint(result)) for result in results if not result.passed]


def grade(read: Callable[[Path], Lab], open_engine: Callable[[Lab], Engine], lab_file: Path,
          folder: Path, parallel: int, timeout: float, progress: Callable[[str], None]) -> list[Graded]:
    """Every submission under `folder`, `parallel` at a time, each in a slot of its own."""
    students = submissions(folder)
    slots = list(range(max(1, parallel)))
    free = threading.Semaphore(len(slots))
    lock, turns = threading.Lock(), Turns()
    done: list[Graded] = []
    finished: list[tuple[Lab, Engine]] = []
    scratch = Path(tempfile.mkdtemp(prefix="labctl-grade-"))

    def one(submission: Path) -> Graded:
        with free:
            with lock:
                slot = slots.pop(0)
                place = scratch / submission.name
            try:
                place.mkdir(parents=True)
                graded = grade_one(read, open_engine, lab_file, submission, slot, timeout, progress,
                                   place, turns, finished)
            finally:
                with lock:
                    slots.append(slot)
        with lock:
            done.append(graded)
            progress(Counted(f"graded {len(done)}/{len(students)}: {graded.student} "
                             f"{graded.score:g}/{graded.points:g} in {graded.seconds:.0f}s"
                             + (f" ({graded.error})" if graded.error else ""), "grade", len(done), len(students)))
        return graded

    try:
        with ThreadPoolExecutor(max_workers=len(slots)) as pool:
            return list(pool.map(one, students))
    finally:
        # What an instance could not remove while another used it (the lab image copied
        # to an engine elsewhere), a second `down` removes now that none does.
        for lab, engine in finished:
            if not lab.topology.traits.copies_files:   # the image is this machine's own
                continue
            try:
                down(lab.topology, engine, lambda message: None)
            except LabError as exc:
                progress(f"{lab.name}: down failed: {exc}")
        shutil.rmtree(scratch, ignore_errors=True)
