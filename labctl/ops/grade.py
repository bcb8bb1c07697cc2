"""`labctl grade SUBMISSIONS/`: one lab, run against each student's folder in turn.

Each submission is a folder of a student's files; the lab mounts them from `./submission/`
where it says (`files: ["./submission/server.py:/exercise/server.py"]`). For each, labctl
copies the lab's own files to a scratch folder with that student's files (and nobody
else's) as its `submission/`, brings it up, runs its checks, and takes it down whatever
happened. A folder is read as data (labctl.ops.submissions): whatever it holds and whatever
its programs do, the run goes on and every entry gets a row, saying why where it could not
be graded. Instances are named by number, never by a folder's name. `parallel` runs that
many at once, each under a name and subnets of its own, and each holds its lab's lock."""

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
from .events import publish
from .lifecycle import check, down, up
from .lock import hold
from .submissions import copy_tree, digest, entries

SUBMISSION = "submission"
LEFT_OUT = {"compose", ".labctl", SUBMISSION, "__pycache__"}
DOWN_ALLOWANCE = 60.0     # what taking one instance down may take, in the stated bound


@dataclass
class Graded:
    """One submission's row. `student` is the folder's name as the file system gave it
    (undecodable bytes kept as surrogate escapes): data, escaped wherever it is shown."""
    student: str
    number: int = 0               # its place in the class (1, 2, ...): instances are named by it
    score: float = 0.0
    points: float = 0.0
    passed: int = 0
    failed: int = 0
    seconds: float = 0.0
    failures: list[tuple[str, str]] = field(default_factory=list)   # (check, reason)
    error: str = ""                                                  # why the lab never ran
    machines: list[str] = field(default_factory=list)                # where its hosts ran (a Swarm's)
    results: list[CheckResult] = field(default_factory=list)         # each check, as judged
    digest: str = ""              # of the submission's content, for skipping it when unchanged
    reused: bool = False          # unchanged since the last run: this row is that run's
    notes: list[str] = field(default_factory=list)                   # what the copy left out
    trouble: str = ""             # what went wrong with the run itself (not the student's doing)

    @property
    def summary(self) -> str:
        said = self.error or "; ".join(f"{name}: {reason}" for name, reason in self.failures)
        return "; ".join(filter(None, [said, *self.notes]))


def submissions(folder: Path) -> list[tuple[str, str | None]]:
    """The class folder's entries: (name, why it cannot be graded, or None)."""
    if not folder.is_dir():
        raise LabError(f"{folder} is not a folder of submissions (one folder per student)")
    try:
        found = entries(folder)
    except OSError as exc:
        raise LabError(f"{folder}: cannot list it: {exc.strerror}") from None
    if not found:
        raise LabError(f"{folder} holds no submission folders (one folder per student)")
    return found


def _instance(lab_file: Path, submission: Path, scratch: Path, leave: set[Path]) -> tuple[Path, list[str]]:
    """The lab's own files with this student's as its submission/, in `scratch`; what the
    student's copy left out. `leave`: folders of the lab's that are not the lab's files
    (the class, the outputs)."""
    lab_folder = lab_file.parent
    skip = {lab_folder / name for name in LEFT_OUT} | leave
    copy_tree(lab_folder, scratch / "lab", skip=skip, budget=False)
    copied = copy_tree(submission, scratch / "lab" / SUBMISSION)
    return scratch / "lab" / lab_file.name, copied.left_out


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


Tell = Callable[..., None]   # tell(action, student, **detail): a grade event on the graded lab's channel


def _silent(*args: object, **detail: object) -> None:
    pass


def teller(lab: Lab | None, open_engine: Callable[[Lab], Engine]) -> Tell:
    """How a grading tells whoever listens to the graded lab (labctl.ops.events): on the
    channel of `lab` (as its caller read it), through its engine, opened once here. Without
    a lab, or where its engine does not open, nobody is told, and the grading goes on as
    ever."""
    if lab is None:
        return _silent
    try:
        engine = open_engine(lab)
    except Exception:
        return _silent
    return lambda action, student="", **detail: publish(lab.topology, engine, "grade", action, student, **detail)


def grade_one(read: Callable[[Path], Lab], open_engine: Callable[[Lab], Engine], lab_file: Path,
              submission: Path, graded: Graded, slot: int, timeout: float, progress: Callable[[str], None],
              scratch: Path, turns: Turns, finished: list, leave: set[Path], tell: Tell = _silent) -> Graded:
    """One student's run in `scratch`, taking its turns (see Turns) and its lab's lock."""
    started = time.monotonic()
    deadline = started + timeout
    try:
        lab_copy, left_out = _instance(lab_file, submission, scratch, leave)
        if left_out:
            graded.notes.append("not copied: " + "; ".join(left_out))
        lab = read(lab_copy)
        # Never the lab's own name or subnets: it may be running beside the grading.
        relocate(lab.topology, slot + 1)
        lab.topology.name = f"{lab.topology.name}-grade{slot + 1}"
        engine = open_engine(lab)
    except (LabError, OSError) as exc:
        graded.error = f"the lab could not be read with this submission: {exc}"
        graded.points = _points(read, lab_file)
        return graded
    quiet: Callable[[str], None] = lambda message: None   # noqa: E731  (per-student noise)
    try:
        with hold(lab.topology, engine, "grade", progress):
            try:
                with turns.change():
                    tell("coming up", graded.student, number=graded.number, instance=lab.topology.name)
                    up(lab.topology, engine, quiet, timeout=max(1.0, deadline - time.monotonic()))
                try:
                    graded.machines = sorted({state.machine for state in engine.states(lab.topology)
                                              if state.role == "host" and state.machine})
                except LabError:
                    pass   # where it ran is a note in the margin, never a reason to stop
                with turns.check():
                    tell("checking", graded.student, number=graded.number, instance=lab.topology.name)
                    results, _seconds = check(lab, engine, deadline=deadline)
                _score(graded, results)
            except LabError as exc:
                graded.error = f"never ready: {exc}"
                graded.points = sum(c.points for c in lab.checks)
            finally:
                try:
                    with turns.change():
                        down(lab.topology, engine, quiet)
                except LabError as exc:
                    graded.trouble = f"down failed: {exc}"
                    progress(f"submission {graded.number}: down failed: {exc}")
                finished.append((lab, engine))
    except LabError as exc:   # the lock itself
        graded.error = graded.error or f"not graded: {exc}"
        graded.trouble = graded.trouble or str(exc)
    graded.seconds = time.monotonic() - started
    return graded


def _points(read: Callable[[Path], Lab], lab_file: Path) -> float:
    try:
        return sum(c.points for c in read(lab_file).checks)
    except LabError:
        return 0.0


def _score(graded: Graded, results: list[CheckResult]) -> None:
    graded.score, graded.points = score(results), total(results)
    graded.passed = sum(result.passed for result in results)
    graded.failed = len(results) - graded.passed
    graded.failures = [(result.name, reason_with_hint(result)) for result in results if not result.passed]
    graded.results = results


def bound(lab: Lab, students: int, parallel: int, timeout: float) -> float:
    """The longest the run may take: each submission ends within its --timeout, the longest
    of its checks' own times beyond it, and its down; K at a time."""
    longest = max((check.timeout + (check.within or 0) for check in lab.checks), default=0.0)
    rounds = -(-students // max(1, parallel))
    return rounds * (timeout + longest + DOWN_ALLOWANCE)


def grade(read: Callable[[Path], Lab], open_engine: Callable[[Lab], Engine], lab_file: Path,
          folder: Path, parallel: int, timeout: float, progress: Callable[[str], None],
          previous: dict[str, Graded] | None = None, only: set[str] | None = None,
          force: bool = False, leave: set[Path] | None = None, lab: Lab | None = None) -> list[Graded]:
    """Every entry of `folder` (or those in `only`), `parallel` at a time, each in a slot of
    its own. A submission whose content is what it was when `previous` graded it keeps that
    row unless `force`. `leave`: folders the instances must not copy (the outputs). `lab`:
    the lab file as read, whose channel hears the grading's events (labctl.ops.events)."""
    found = submissions(folder)
    if only:
        unknown = sorted(only - {name for name, _ in found})
        if unknown:
            raise LabError(f"no submission named {unknown[0]!r} in {folder}")
    rows = [Graded(name, number) for number, (name, _) in enumerate(found, 1)]
    leave = {folder.resolve(), *(path.resolve() for path in leave or set())}
    # The lab's own files count too (a changed check grades everyone again); not what
    # labctl writes beside them, nor the class, nor the outputs.
    lab_digest = digest(lab_file.parent, {lab_file.parent / name for name in LEFT_OUT} | leave)
    todo: list[Graded] = []
    for graded, (name, why) in zip(rows, found):
        if why is not None:
            graded.error = f"not graded: {why}"
            graded.points = _points(read, lab_file)
            continue
        earlier = (previous or {}).get(name)
        if only and name not in only:
            if earlier is not None:
                _reuse(graded, earlier)
            else:
                graded.error = "not graded in this run (--only) and no earlier row"
            continue
        graded.digest = digest(folder / name) + lab_digest[:16]
        if earlier is not None and not force and earlier.digest == graded.digest and not earlier.trouble:
            _reuse(graded, earlier)
            continue
        todo.append(graded)
    started = time.monotonic()
    tell = teller(lab, open_engine)
    tell("started", submissions=len(rows))
    queued = {id(graded) for graded in todo}
    for graded in rows:
        if id(graded) in queued:
            tell("queued", graded.student, number=graded.number)
        else:
            _tell_graded(tell, graded)
    slots = list(range(max(1, parallel)))
    free = threading.Semaphore(len(slots))
    lock, turns = threading.Lock(), Turns()
    done: list[Graded] = []
    finished: list[tuple[Lab, Engine]] = []
    scratch = Path(tempfile.mkdtemp(prefix="labctl-grade-"))

    def one(graded: Graded) -> None:
        with free:
            with lock:
                slot = slots.pop(0)
            place = scratch / str(graded.number)
            try:
                place.mkdir()
                grade_one(read, open_engine, lab_file, folder / graded.student, graded, slot, timeout,
                          progress, place, turns, finished, leave, tell)
            except Exception as exc:   # a bug must cost one row, never the class's grades
                graded.error = f"not graded: internal error: {exc.__class__.__name__}: {exc}"
                graded.trouble = graded.error
            finally:
                # The instance's folder stays until the run ends: on an engine elsewhere its
                # state says which copied image the last `down` below must remove.
                with lock:
                    slots.append(slot)
        _tell_graded(tell, graded)
        with lock:
            done.append(graded)
            progress(Counted(f"graded {len(done)}/{len(todo)}: submission {graded.number} "
                             f"{graded.score:g}/{graded.points:g} in {graded.seconds:.0f}s"
                             + (" (not ready)" if graded.error else ""), "grade", len(done), len(todo)))

    try:
        if todo:
            with ThreadPoolExecutor(max_workers=len(slots)) as pool:
                list(pool.map(one, todo))
        return rows
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
        tell("finished", graded=len(done), seconds=round(time.monotonic() - started, 3))


def _tell_graded(tell: Tell, graded: Graded) -> None:
    tell("graded", graded.student, number=graded.number, score=graded.score, points=graded.points,
         failed=[name for name, _reason in graded.failures], error=graded.error, seconds=round(graded.seconds, 3))


def _reuse(graded: Graded, earlier: Graded) -> None:
    number = graded.number
    graded.__dict__.update(earlier.__dict__)
    graded.number, graded.reused = number, True
