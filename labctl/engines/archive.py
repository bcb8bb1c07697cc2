"""Files put into a created container through the API before it starts (keys, configs, a
probe's credentials): a tar archive of (path, content, mode), with its folders."""

from __future__ import annotations

import io
import tarfile
from pathlib import PurePosixPath


def archive(files: list[tuple[str, bytes, int]]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        folders: set[PurePosixPath] = set()
        for target, data, mode in files:
            path = PurePosixPath(target.lstrip("/"))
            for parent in reversed(path.parents[:-1]):
                if parent not in folders:
                    folders.add(parent)
                    entry = tarfile.TarInfo(str(parent))
                    entry.type, entry.mode = tarfile.DIRTYPE, 0o755
                    tar.addfile(entry)
            entry = tarfile.TarInfo(str(path))
            entry.size, entry.mode = len(data), mode
            tar.addfile(entry, io.BytesIO(data))
    return buffer.getvalue()
