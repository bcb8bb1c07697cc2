"""Writing beside a lab file without following symbolic links.

A lab folder may come from someone else (a student's submission): a `compose/<lab>.tmp`
or `.labctl/<lab>/pki/ca.key` shipped as a symlink must not turn labctl's writes into
writes elsewhere. Every file labctl keeps for a lab is written here: inside the lab's
folder, through no symlinked folder, never through a symlink, atomically (a temporary
file created exclusively, then renamed over the target).
"""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path

from .errors import LabError
from .names import STATE_FOLDER


def _components(root: Path, path: Path) -> list[Path]:
    root, path = Path(os.path.abspath(root)), Path(os.path.abspath(path))
    try:
        relative = path.relative_to(root)
    except ValueError:
        raise LabError(f"{path}: labctl writes only inside the lab's folder ({root})") from None
    return [root.joinpath(*relative.parts[:count]) for count in range(1, len(relative.parts) + 1)]


def _refuse_link(path: Path) -> None:
    raise LabError(f"{path} is a symbolic link; labctl writes nothing through one "
                   "(remove it and run again)")


def ensure_folder(root: Path, folder: Path, mode: int | None = None) -> Path:
    """Create `folder` (and those between it and `root`), refusing any that is a symlink."""
    for part in _components(root, folder):
        try:
            info = os.lstat(part)
        except FileNotFoundError:
            try:
                os.mkdir(part, 0o755 if mode is None else mode)
            except FileExistsError:
                # another process (a pytest-xdist worker) made it first: look at what it made
                info = os.lstat(part)
            else:
                if part.name == STATE_FOLDER:
                    _ignored_by_git(part)
                continue
        if stat.S_ISLNK(info.st_mode):
            _refuse_link(part)
        if not stat.S_ISDIR(info.st_mode):
            raise LabError(f"{part} is in the way: labctl needs a folder there")
    if mode is not None:
        os.chmod(folder, mode)
    return folder


def _ignored_by_git(folder: Path) -> None:
    """A `.gitignore` of everything in a state folder labctl creates, so `git add -A` never
    commits the lab CA's private key."""
    try:
        descriptor = os.open(folder / ".gitignore", os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    except FileExistsError:
        return
    with os.fdopen(descriptor, "w") as ignore:
        ignore.write("# Written by labctl: what it keeps for this lab (keys among it) stays out of git.\n*\n")


def write_file(root: Path, path: Path, data: bytes | str, mode: int = 0o644) -> Path:
    """Write `path` (inside `root`) atomically with `mode`, following no symlink."""
    ensure_folder(root, path.parent)
    try:
        if stat.S_ISLNK(os.lstat(path).st_mode):
            _refuse_link(path)
    except FileNotFoundError:
        pass
    content = data.encode() if isinstance(data, str) else data
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(content)
        os.chmod(temporary, mode)  # the umask may have narrowed it
        os.replace(temporary, path)  # renames over a name: never writes through a link
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return path


def remove_file(root: Path, path: Path) -> None:
    """Remove `path` (a file or a link, never what a link points to) if it exists."""
    _components(root, path)
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
