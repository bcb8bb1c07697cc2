"""One operation per lab at a time.

Two `up`s of one lab started together tore each other's lab down. An operation that changes
a lab holds its lock: a file lock (flock) on this machine, keyed by the engine's identity and
the lab's name, so it covers every folder and every user of that engine here. The kernel
releases it when the process ends, however it ends; the file only says who holds it. A
second operation waits, saying so, or refuses at once with `--no-wait`.
"""

from __future__ import annotations

import fcntl
import getpass
import hashlib
import json
import os
import stat
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from ..engines.base import Engine
from ..errors import LabError
from ..model.topology import Topology

Progress = Callable[[str], None]
# Locks a process holds for its children too (a pytest run's tests may call labctl on the
# lab the run holds): "path:pid" entries, separated by os.pathsep.
HELD_VARIABLE = "LABCTL_HELD_LOCKS"
LOCK_FOLDERS = (Path("/run/lock/labctl"), Path(tempfile.gettempdir()) / "labctl-locks")


def _folder() -> Path:
    """A folder every user may create lock files in (sticky, like /tmp), never a symlink."""
    for folder in LOCK_FOLDERS:
        try:
            folder.mkdir(mode=0o1777, exist_ok=True)
            info = os.lstat(folder)
            if not stat.S_ISDIR(info.st_mode):
                continue
            if info.st_uid == os.geteuid():
                os.chmod(folder, 0o1777)
            if os.access(folder, os.W_OK | os.X_OK):
                return folder
        except OSError:
            continue
    raise LabError("no folder to keep lab locks in: " + " or ".join(map(str, LOCK_FOLDERS)))


def lock_path(topology: Topology, engine: Engine) -> Path:
    key = hashlib.sha256(f"{engine.identity()}/{topology.name}".encode()).hexdigest()[:16]
    return _folder() / f"{topology.name}-{key}.lock"


def _holder(handle) -> str:
    handle.seek(0)
    try:
        held = json.loads(handle.read() or "{}")
    except ValueError:
        return "another labctl"
    since = time.strftime("%H:%M:%S", time.localtime(held.get("since", 0)))
    return (f"'{held.get('operation', '?')}' (pid {held.get('pid', '?')}, user {held.get('user', '?')}, "
            f"since {since})")


def _held_for_us(path: Path, handle) -> bool:
    """True when the lock's holder is a process that holds it for its children, us among them."""
    handle.seek(0)
    try:
        pid = json.loads(handle.read() or "{}").get("pid")
    except ValueError:
        return False
    return f"{path}:{pid}" in os.environ.get(HELD_VARIABLE, "").split(os.pathsep)


@contextmanager
def hold(topology: Topology, engine: Engine, operation: str, progress: Progress,
         wait: bool = True, for_children: bool = False) -> Iterator[None]:
    """Hold the lab's lock for `operation`; wait for it, or refuse when `wait` is False.
    `for_children`: processes this one starts may work on the lab meanwhile."""
    path = lock_path(topology, engine)
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o666)
    with os.fdopen(descriptor, "r+") as handle:
        try:
            os.fchmod(descriptor, 0o666)  # another user's labctl must be able to take it too
        except PermissionError:
            pass
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if _held_for_us(path, handle):
                yield
                return
            holder = _holder(handle)
            if not wait:
                raise LabError(f"lab '{topology.name}' is busy: {holder} is working on it; "
                               "try again when it is done (or leave out --no-wait to wait)") from None
            progress(f"lab '{topology.name}' is busy: {holder} is working on it; waiting "
                     "(Ctrl-C stops waiting)")
            fcntl.flock(descriptor, fcntl.LOCK_EX)
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps({"operation": operation, "pid": os.getpid(), "user": _user(),
                                 "since": time.time(), "argv": sys.argv[1:8]}))
        handle.flush()
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
            handle.seek(0)
            handle.truncate()
            fcntl.flock(descriptor, fcntl.LOCK_UN)


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return str(os.getuid())
