"""One operation per lab at a time.

Two `up`s of one lab started together tore each other's lab down. An operation that changes
a lab holds its lock: a file lock (flock) on this machine, keyed by the engine's identity and
the lab's name, so it covers every folder of a user on that engine here. The kernel releases
it when the process ends, however it ends; the file only says who holds it. A second
operation waits, saying so, or refuses at once with `--no-wait`.

The locks live in a folder only their user can write: root's in /run/labctl (in /run, where
nobody else can make it first), anyone else's in $XDG_RUNTIME_DIR/labctl or else
labctl-UID in the temporary folder. A shared, world-writable folder let any local user hold
a lab's lock forever or write what its holder says. So the folder must be ours (or root's),
writable by nobody else and no symlink, and each lock file ours, or labctl refuses in one
line. What a lock file says of its holder is data: read bounded, checked, shown escaped.
"""

from __future__ import annotations

import errno
import fcntl
import getpass
import hashlib
import json
import math
import os
import stat
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from ..engines.base import Engine
from ..errors import LabError
from ..model.topology import Topology
from ..text import one_line

Progress = Callable[[str], None]
# Locks a process holds for its children too (a pytest run's tests may call labctl on the
# lab the run holds): "path:pid" entries, separated by os.pathsep.
HELD_VARIABLE = "LABCTL_HELD_LOCKS"
ROOT_FOLDER = Path("/run/labctl")
RUNTIME_VARIABLE = "XDG_RUNTIME_DIR"
# Where the locks are kept instead of the above (the tests' own folder); None: the above.
FOLDER: Path | None = None
FOLDER_MODE = 0o700
FILE_MODE = 0o600
MAX_HOLDER = 4096          # bytes of a lock file read for who holds it; a longer one says nothing
MAX_HOLDER_TEXT = 300      # characters of that shown


def _refuse(path: Path, why: str) -> LabError:
    return LabError(f"lock folder {one_line(path, 200)}: {why}; labctl keeps lab locks only where "
                    "nobody else can write")


def _check_folder(folder: Path) -> Path:
    """`folder`, made if missing, once it is a folder (no symlink) owned by us or root and
    writable by nobody else, in a parent nobody else can rename it in."""
    try:
        os.mkdir(folder, FOLDER_MODE)
    except FileExistsError:
        pass
    except OSError as exc:
        raise _refuse(folder, f"cannot make it: {exc.strerror}") from None
    try:
        info, parent = os.lstat(folder), os.stat(folder.parent)
    except OSError as exc:
        raise _refuse(folder, f"cannot read it: {exc.strerror}") from None
    if stat.S_ISLNK(info.st_mode):
        raise _refuse(folder, "it is a symbolic link")
    if not stat.S_ISDIR(info.st_mode):
        raise _refuse(folder, "it is not a folder")
    if info.st_uid not in (os.geteuid(), 0):
        raise _refuse(folder, f"it belongs to user {info.st_uid}, not to this user or root")
    if info.st_mode & 0o022:
        raise _refuse(folder, f"others may write in it (mode {stat.S_IMODE(info.st_mode):o}; "
                              f"'chmod 700' it if it is yours)")
    if parent.st_mode & 0o002 and not parent.st_mode & stat.S_ISVTX:
        raise _refuse(folder, "anyone may rename it: its parent folder is world-writable and not sticky")
    return folder


def lock_folder() -> Path:
    """This user's folder of lab locks (see the module's text)."""
    if FOLDER is not None:
        return _check_folder(FOLDER)
    if os.geteuid() == 0:
        return _check_folder(ROOT_FOLDER)
    runtime = os.environ.get(RUNTIME_VARIABLE, "")
    if runtime and os.path.isabs(runtime) and os.path.isdir(runtime):
        return _check_folder(Path(runtime) / "labctl")
    return _check_folder(Path(tempfile.gettempdir()) / f"labctl-{os.geteuid()}")


def lab_key(topology: Topology, engine: Engine) -> str:
    """The lab's name and a digest of it with its engine's identity: what names its lock,
    and its event channel (labctl.ops.events)."""
    key = hashlib.sha256(f"{engine.identity()}/{topology.name}".encode()).hexdigest()[:16]
    return f"{topology.name}-{key}"


def lock_path(topology: Topology, engine: Engine) -> Path:
    return lock_folder() / f"{lab_key(topology, engine)}.lock"


def open_lock(path: Path) -> int:
    """The lock file, opened (made if missing) once it is a regular file of ours: never
    through a symlink, never a pipe that would block the open."""
    try:
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC,
                             FILE_MODE)
    except OSError as exc:
        why = "it is a symbolic link" if exc.errno == errno.ELOOP else exc.strerror
        raise LabError(f"lock file {one_line(path, 200)}: cannot open it: {why}") from None
    try:
        info = os.fstat(descriptor)
        if not stat.S_ISREG(info.st_mode):
            raise LabError(f"lock file {one_line(path, 200)}: it is not a regular file; remove it")
        if info.st_uid != os.geteuid():
            raise LabError(f"lock file {one_line(path, 200)}: it belongs to user {info.st_uid}, not to this "
                           "user; remove it")
        if stat.S_IMODE(info.st_mode) != FILE_MODE:
            os.fchmod(descriptor, FILE_MODE)
    except BaseException:
        os.close(descriptor)
        raise
    return descriptor


@dataclass(frozen=True)
class Holder:
    operation: str
    pid: int
    user: str
    since: float

    def describe(self) -> str:
        try:
            since = time.strftime("%H:%M:%S", time.localtime(self.since))
        except (OverflowError, OSError, ValueError):
            since = "?"
        return one_line(f"'{self.operation}' (pid {self.pid}, user {self.user}, since {since})", MAX_HOLDER_TEXT)


def read_holder(descriptor: int) -> Holder | None:
    """Who the lock file says holds it, or None when it says nothing readable (empty, not
    JSON, the wrong shape or types, or longer than MAX_HOLDER bytes)."""
    try:
        data = os.pread(descriptor, MAX_HOLDER + 1, 0)
        held = json.loads(data.decode("utf-8")) if 0 < len(data) <= MAX_HOLDER else None
    except (OSError, ValueError, RecursionError):
        return None
    if not isinstance(held, dict):
        return None
    operation, pid, user, since = (held.get(key) for key in ("operation", "pid", "user", "since"))
    if not (isinstance(operation, str) and isinstance(user, str) and isinstance(pid, int)
            and not isinstance(pid, bool) and isinstance(since, (int, float)) and not isinstance(since, bool)
            and math.isfinite(since)):
        return None
    return Holder(operation, pid, user, float(since))


def describe_holder(holder: Holder | None) -> str:
    return holder.describe() if holder else "another labctl"


def _held_for_us(path: Path, holder: Holder | None) -> bool:
    """True when the lock's holder is a process that holds it for its children, us among them.
    An entry holds os.pathsep itself ("path:pid"), so it is looked for whole, not split out."""
    held = os.environ.get(HELD_VARIABLE, "")
    return holder is not None and f"{os.pathsep}{path}:{holder.pid}{os.pathsep}" in f"{os.pathsep}{held}{os.pathsep}"


def _write_holder(descriptor: int, operation: str) -> None:
    said = json.dumps({"operation": operation, "pid": os.getpid(), "user": _user(),
                       "since": time.time(), "argv": sys.argv[1:8]}).encode()
    os.ftruncate(descriptor, 0)
    os.pwrite(descriptor, said[:MAX_HOLDER], 0)


@contextmanager
def hold(topology: Topology, engine: Engine, operation: str, progress: Progress,
         wait: bool = True, for_children: bool = False) -> Iterator[None]:
    """Hold the lab's lock for `operation`; wait for it, or refuse when `wait` is False.
    `for_children`: processes this one starts may work on the lab meanwhile."""
    path = lock_path(topology, engine)
    descriptor = open_lock(path)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            free = True
        except BlockingIOError:
            free = False
        if not free:
            holder = read_holder(descriptor)
            if _held_for_us(path, holder):
                yield
                return
            if not wait:
                raise LabError(f"lab '{topology.name}' is busy: {describe_holder(holder)} is working on it; "
                               "try again when it is done (or leave out --no-wait to wait)")
            progress(f"lab '{topology.name}' is busy: {describe_holder(holder)} is working on it; waiting "
                     "(Ctrl-C stops waiting)")
            fcntl.flock(descriptor, fcntl.LOCK_EX)
        _write_holder(descriptor, operation)
        exported = os.environ.get(HELD_VARIABLE)
        if for_children:
            os.environ[HELD_VARIABLE] = os.pathsep.join(filter(None, [exported, f"{path}:{os.getpid()}"]))
        try:
            yield
        finally:
            if for_children:
                if exported is None:
                    os.environ.pop(HELD_VARIABLE, None)
                else:
                    os.environ[HELD_VARIABLE] = exported
            os.ftruncate(descriptor, 0)
            fcntl.flock(descriptor, fcntl.LOCK_UN)
    finally:
        os.close(descriptor)


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return str(os.getuid())
