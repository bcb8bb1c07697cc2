"""A class's folder, read as data: which entries are submissions, a bounded copy of one into
its lab instance, and a digest of its content.

A student's folder may hold anything: named pipes and sockets (opening one would block or
fail), device files, symbolic links (to /etc, or to another student's folder), folders
thousands deep, sparse files of many gigabytes, names in any encoding. Nothing here follows
a link, opens anything but a regular file, recurses, or copies without a budget; what is
left out is said, so the student's row can say it."""

from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

MAX_DEPTH = 32                 # folders below the submission's own
MAX_ENTRIES = 10_000           # files and folders a submission may hold
MAX_BYTES = 64 << 20           # what a submission's files may weigh in all
MAX_FILE = 32 << 20            # and any one of them
KINDS = {stat.S_IFIFO: "a named pipe", stat.S_IFSOCK: "a socket", stat.S_IFCHR: "a device",
         stat.S_IFBLK: "a device", stat.S_IFLNK: "a symbolic link"}


@dataclass
class Copied:
    """What a copy took and what it left out (a line each, for the student's row)."""
    files: int = 0
    bytes: int = 0
    left_out: list[str] = field(default_factory=list)

    def note(self, path: str, why: str) -> None:
        if len(self.left_out) < 20:
            self.left_out.append(f"{path}: {why}")
        elif len(self.left_out) == 20:
            self.left_out.append("and more")


def kind_of(mode: int) -> str:
    return KINDS.get(stat.S_IFMT(mode), "not a regular file")


def entries(folder: Path) -> list[tuple[str, str | None]]:
    """Each entry of the class folder that is not hidden, sorted, with why it cannot be
    graded (None for a folder, which can). A link is never followed: a student's link to
    another's folder, or to /etc, is not a submission."""
    found: list[tuple[str, str | None]] = []
    with os.scandir(folder) as listing:
        for entry in listing:
            if entry.name.startswith("."):
                continue
            try:
                mode = entry.stat(follow_symlinks=False).st_mode
            except OSError as exc:
                found.append((entry.name, f"unreadable ({exc.strerror})"))
                continue
            found.append((entry.name, None if stat.S_ISDIR(mode) else
                          f"{kind_of(mode) if not stat.S_ISREG(mode) else 'a file'}, not a folder of files"))
    return sorted(found, key=lambda item: item[0].encode("utf-8", "surrogateescape"))


def copy_tree(source: Path, target: Path, skip: set[Path] | None = None, budget: bool = True) -> Copied:
    """Copy the regular files and folders under `source` into `target` (which must not
    exist), iteratively; links, pipes, sockets and devices are left out, and with `budget`
    so is what lies past the depth, count and size limits. `skip`: paths never copied."""
    copied = Copied()
    skipped = {os.path.abspath(path) for path in skip or set()}
    os.mkdir(target, 0o755)
    pending: list[tuple[Path, Path, int]] = [(source, target, 0)]
    seen = 0
    while pending:
        here, there, depth = pending.pop()
        try:
            listing = _listing(here, MAX_ENTRIES + 1 - seen if budget else None)
        except OSError as exc:
            copied.note(_shown(source, here), f"unreadable ({exc.strerror})")
            continue
        for entry in listing:
            path = Path(entry.path)
            shown = _shown(source, path)
            if os.path.abspath(path) in skipped:
                continue
            seen += 1
            if budget and seen > MAX_ENTRIES:
                copied.note(shown, f"past the first {MAX_ENTRIES} entries")
                return copied
            try:
                info = entry.stat(follow_symlinks=False)
            except OSError as exc:
                copied.note(shown, f"unreadable ({exc.strerror})")
                continue
            if stat.S_ISDIR(info.st_mode):
                if budget and depth + 1 > MAX_DEPTH:
                    copied.note(shown, f"deeper than {MAX_DEPTH} folders")
                    continue
                os.mkdir(there / entry.name, 0o755)
                pending.append((path, there / entry.name, depth + 1))
            elif not stat.S_ISREG(info.st_mode):
                copied.note(shown, kind_of(info.st_mode))
            elif budget and info.st_size > MAX_FILE:
                copied.note(shown, f"{info.st_size / (1 << 20):.0f} MiB, over {MAX_FILE >> 20} MiB a file")
            elif budget and copied.bytes + info.st_size > MAX_BYTES:
                copied.note(shown, f"past {MAX_BYTES >> 20} MiB in all")
            else:
                try:
                    _copy_file(path, there / entry.name, info.st_mode, info.st_size)
                except OSError as exc:
                    copied.note(shown, f"unreadable ({exc.strerror})")
                    continue
                copied.files += 1
                copied.bytes += info.st_size
    return copied


def _listing(folder: Path, most: int | None) -> list[os.DirEntry]:
    """A folder's entries, sorted, reading no more than `most` of them (a folder of
    millions is not held in memory for a budget of thousands)."""
    found = []
    with os.scandir(folder) as listing:
        for entry in listing:
            found.append(entry)
            if most is not None and len(found) >= most:
                break
    return sorted(found, key=lambda entry: entry.name)


def _copy_file(source: Path, target: Path, mode: int, size: int) -> None:
    # O_NOFOLLOW and O_NONBLOCK: the entry may have been swapped for a link or a pipe since
    # it was listed; then it is not copied rather than followed or waited on.
    descriptor = os.open(source, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    with os.fdopen(descriptor, "rb") as reading:
        if not stat.S_ISREG(os.fstat(reading.fileno()).st_mode):
            return
        with open(target, "xb") as writing:
            # No more than it measured: a file that grows meanwhile is cut there.
            while size > 0 and (chunk := reading.read(min(size, 1 << 20))):
                writing.write(chunk)
                size -= len(chunk)
    os.chmod(target, 0o755 if mode & 0o111 else 0o644)


def _shown(root: Path, path: Path) -> str:
    relative = os.path.relpath(path, root)
    return "." if relative == "." else relative


def digest(folder: Path, skip: set[Path] | None = None) -> str:
    """A digest of what a copy of `folder` would hold (names, kinds, executable bits,
    contents), so an unchanged submission is known without grading it again. Within the
    same budget as the copy: past it, sizes stand in for contents. `skip`: paths left out."""
    skipped = {os.path.abspath(path) for path in skip or set()}
    hashed = hashlib.sha256()
    pending = [(folder, 0)]
    seen, read = 0, 0
    while pending:
        here, depth = pending.pop()
        try:
            listing = _listing(here, MAX_ENTRIES + 1 - seen)
        except OSError:
            continue
        for entry in listing:
            if os.path.abspath(entry.path) in skipped:
                continue
            seen += 1
            if seen > MAX_ENTRIES:
                return hashed.hexdigest()
            try:
                info = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            name = _shown(folder, Path(entry.path)).encode("utf-8", "surrogateescape")
            hashed.update(b"\0" + name + b"\0" + str(stat.S_IFMT(info.st_mode) | (info.st_mode & 0o111)).encode())
            if stat.S_ISDIR(info.st_mode) and depth < MAX_DEPTH:
                pending.append((Path(entry.path), depth + 1))
            elif stat.S_ISREG(info.st_mode):
                hashed.update(str(info.st_size).encode())
                if info.st_size <= MAX_FILE and read + info.st_size <= MAX_BYTES:
                    read += info.st_size
                    try:
                        descriptor = os.open(entry.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
                        with os.fdopen(descriptor, "rb") as reading:
                            while chunk := reading.read(1 << 20):
                                hashed.update(chunk)
                    except OSError:
                        hashed.update(b"unreadable")
    return hashed.hexdigest()
