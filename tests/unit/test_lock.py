"""A lock other users cannot take: the lock folder is ours (or root's) and writable by nobody
else, lock files are ours and 0600, and what a lock file says of its holder is data, shown
escaped, a malformed one said in one line. Cross-process semantics stay: flock, and
LABCTL_HELD_LOCKS for children."""

from __future__ import annotations

import fcntl
import json
import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import pytest

from labctl.errors import LabError
from labctl.ops import lock

NOBODY = 65534


class FakeEngine:
    def identity(self) -> str:
        return "unit-test-engine"


LAB = SimpleNamespace(name="locked")
ENGINE = FakeEngine()


@pytest.fixture
def folder(tmp_path, monkeypatch) -> Path:
    place = tmp_path / "locks"
    monkeypatch.setattr(lock, "FOLDER", place)
    monkeypatch.delenv(lock.HELD_VARIABLE, raising=False)
    return place


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def _hold_elsewhere(path: Path, holder: bytes) -> subprocess.Popen:
    """Another process holding `path` (flock) with `holder` written in it, until its input closes."""
    script = textwrap.dedent(f"""
        import fcntl, os, sys
        fd = os.open({str(path)!r}, os.O_RDWR)
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.ftruncate(fd, 0)
        os.pwrite(fd, {holder!r}, 0)
        print("held", flush=True)
        sys.stdin.read()
    """)
    process = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               text=True)
    assert process.stdout.readline() == "held\n"   # it holds the lock now: no clock involved
    return process


def _refusal(path: Path, holder: bytes) -> str:
    path.parent.mkdir(mode=0o700, exist_ok=True)
    lock.open_lock(path)   # made as labctl makes it
    process = _hold_elsewhere(path, holder)
    try:
        with pytest.raises(LabError) as caught:
            with lock.hold(LAB, ENGINE, "up", lambda message: None, wait=False):
                pass
    finally:
        process.stdin.close()
        process.wait(timeout=30)
    return str(caught.value)


def test_the_folder_and_the_files_are_ours_alone(folder):
    path = lock.lock_path(LAB, ENGINE)
    assert path.parent == folder and _mode(folder) == 0o700
    with lock.hold(LAB, ENGINE, "up", lambda message: None):
        assert _mode(path) == 0o600 and os.lstat(path).st_uid == os.geteuid()
        said = json.loads(path.read_text())
        assert said["operation"] == "up" and said["pid"] == os.getpid()
    assert path.read_text() == ""   # released: it says nobody


def test_a_lock_file_made_by_the_old_labctl_is_narrowed(folder):
    folder.mkdir(mode=0o700)
    path = lock.lock_path(LAB, ENGINE)
    path.touch()
    os.chmod(path, 0o666)
    with lock.hold(LAB, ENGINE, "up", lambda message: None):
        assert _mode(path) == 0o600


@pytest.mark.parametrize("mode", [0o777, 0o1777, 0o770, 0o720, 0o702])
def test_a_folder_others_may_write_in_is_refused(folder, mode):
    folder.mkdir()
    os.chmod(folder, mode)
    with pytest.raises(LabError, match=r"lock folder .*locks: others may write in it \(mode \d+; 'chmod 700'"):
        lock.lock_path(LAB, ENGINE)
    assert not list(folder.iterdir())   # nothing was made in it


def test_a_folder_that_is_a_link_or_a_file_is_refused(folder, tmp_path):
    (tmp_path / "elsewhere").mkdir(mode=0o700)
    folder.symlink_to(tmp_path / "elsewhere")
    with pytest.raises(LabError, match="it is a symbolic link"):
        lock.lock_path(LAB, ENGINE)
    folder.unlink()
    folder.write_text("")
    with pytest.raises(LabError, match="it is not a folder"):
        lock.lock_path(LAB, ENGINE)


def test_a_folder_in_a_world_writable_parent_that_is_not_sticky_is_refused(folder):
    os.chmod(folder.parent, 0o777)
    try:
        with pytest.raises(LabError, match="its parent folder is world-writable and not sticky"):
            lock.lock_path(LAB, ENGINE)
        os.chmod(folder.parent, 0o1777)   # as /tmp is: nobody renames what is not theirs
        assert lock.lock_path(LAB, ENGINE).parent == folder
    finally:
        os.chmod(folder.parent, 0o755)


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a folder to another user takes root")
def test_a_folder_or_a_file_of_another_user_is_refused(folder):
    folder.mkdir(mode=0o700)
    os.chown(folder, NOBODY, NOBODY)
    with pytest.raises(LabError, match=f"it belongs to user {NOBODY}, not to this user or root"):
        lock.lock_path(LAB, ENGINE)
    os.chown(folder, os.geteuid(), os.getegid())
    path = lock.lock_path(LAB, ENGINE)
    path.write_text("")
    os.chown(path, NOBODY, NOBODY)
    with pytest.raises(LabError, match=f"it belongs to user {NOBODY}, not to this user; remove it"):
        with lock.hold(LAB, ENGINE, "up", lambda message: None):
            pass


def test_a_lock_file_that_is_a_link_or_a_pipe_is_refused_without_blocking(folder, tmp_path):
    folder.mkdir(mode=0o700)
    path = lock.lock_path(LAB, ENGINE)
    target = tmp_path / "target"
    target.write_text("untouched")
    path.symlink_to(target)
    with pytest.raises(LabError, match="cannot open it: it is a symbolic link"):
        with lock.hold(LAB, ENGINE, "up", lambda message: None):
            pass
    assert target.read_text() == "untouched"
    path.unlink()
    os.mkfifo(path)
    with pytest.raises(LabError, match="it is not a regular file; remove it"):
        with lock.hold(LAB, ENGINE, "up", lambda message: None):
            pass


def test_the_per_user_folder_is_chosen_by_who_runs(monkeypatch, tmp_path):
    monkeypatch.setattr(lock, "FOLDER", None)
    runtime = tmp_path / "runtime"
    runtime.mkdir(mode=0o700)
    monkeypatch.setattr(os, "geteuid", lambda: 4321)
    monkeypatch.setattr(lock, "_check_folder", lambda folder: folder)
    monkeypatch.setenv(lock.RUNTIME_VARIABLE, str(runtime))
    assert lock.lock_folder() == runtime / "labctl"
    monkeypatch.delenv(lock.RUNTIME_VARIABLE)
    assert lock.lock_folder().name == "labctl-4321"
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    assert lock.lock_folder() == lock.ROOT_FOLDER


def test_a_busy_lab_names_its_holder_escaped(folder):
    holder = json.dumps({"operation": "up\x1b[2J\x1b]0;pwned\x07", "pid": 4242, "user": "eve\u202e",
                         "since": 0}).encode()
    message = _refusal(lock.lock_path(LAB, ENGINE), holder)
    assert message.startswith("lab 'locked' is busy: 'up\\x1b[2J\\x1b]0;pwned\\x07' (pid 4242, user eve\\u202e")
    assert "\x1b" not in message and "\n" not in message


@pytest.mark.parametrize("holder", [
    b"not json", b"\xff\xfe garbage", b"[1, 2]", b'"text"', b"null",
    b'{"operation": 5, "pid": "x", "user": [], "since": "now"}',
    b'{"operation": "up", "pid": 1, "user": "u", "since": 1e400}',
    b'{"operation": "up", "pid": true, "user": "u", "since": 0}',
    b"[" * 100000,
    json.dumps({"operation": "x" * 10000, "pid": 1, "user": "u", "since": 0}).encode(),
])
def test_a_malformed_holder_is_one_line_never_an_exception(folder, holder):
    message = _refusal(lock.lock_path(LAB, ENGINE), holder)
    assert message == ("lab 'locked' is busy: another labctl is working on it; try again when it is done "
                       "(or leave out --no-wait to wait)")


def test_a_holder_from_the_far_future_is_shown(folder):
    holder = json.dumps({"operation": "up", "pid": 7, "user": "u", "since": 1e300}).encode()
    assert "'up' (pid 7, user u, since ?)" in _refusal(lock.lock_path(LAB, ENGINE), holder)


def test_a_second_operation_waits_and_children_share_the_lock(folder):
    path = lock.lock_path(LAB, ENGINE)
    with lock.hold(LAB, ENGINE, "pytest", lambda message: None, for_children=True):
        assert f"{path}:{os.getpid()}" in os.environ[lock.HELD_VARIABLE]
        # Another process is refused; a child of ours, told so, goes through.
        probe = textwrap.dedent(f"""
            import sys
            from types import SimpleNamespace
            from pathlib import Path
            from labctl.ops import lock
            lock.FOLDER = Path({str(folder)!r})
            class Engine:
                def identity(self): return "unit-test-engine"
            try:
                with lock.hold(SimpleNamespace(name="locked"), Engine(), "down", print, wait=False):
                    print("went through")
            except Exception as exc:
                print(exc)
        """)
        child = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
        assert child.stdout.strip() == "went through", child.stderr
        stranger = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60,
                                  env={**os.environ, lock.HELD_VARIABLE: ""})
        assert "is busy: 'pytest' (pid" in stranger.stdout, stranger.stderr
    assert lock.HELD_VARIABLE not in os.environ
    descriptor = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)   # released: free for anyone now
    finally:
        os.close(descriptor)
