"""A reaper for labs whose owner dies without taking them down, as testcontainers' Ryuk
does: a pytest run killed outright, out of memory, or a CI job cancelled.

The owner starts a small process beside it, in a session of its own, holding the read end
of a pipe whose write end only the owner holds. When the owner is done it says `release`;
when it dies, however it dies, the kernel closes its end and the reaper reads end-of-file
at once (nothing polls) and takes the lab down, through the same lock and lifecycle as
`labctl down`. Its log is `.labctl/<lab>/reaper.log`.

    python -m labctl.ops.reaper LAB_FILE [--engine KIND|ssh://...] [--cluster FILE]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Sequence

from ..engines.kinds import EngineChoice
from ..files import ensure_folder

RELEASE = b"release\n"


class Reaper:
    """The owner's side: start it once the lab is up, `release` it once the lab is down
    (or is to be kept)."""

    def __init__(self, lab_file: Path, choice: EngineChoice, log: Path,
                 command: Sequence[str] = ("labctl.ops.reaper",)) -> None:
        # `command`: the module (and its verb) that reaps; another one may reap otherwise,
        # as labctl.testing's does for one pytest-xdist worker's instance of the lab.
        argv = [sys.executable, "-m", *command, str(lab_file), *engine_arguments(choice)]
        ensure_folder(lab_file.parent, log.parent)
        descriptor = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, 0o644)
        try:
            # A session of its own: the owner's Ctrl-C or hangup must not reach it.
            self.process = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=descriptor,
                                            stderr=descriptor, start_new_session=True, close_fds=True)
        finally:
            os.close(descriptor)

    def release(self) -> None:
        """The owner took the lab down itself (or keeps it): the reaper leaves it alone."""
        if self.process.stdin and not self.process.stdin.closed:
            try:
                self.process.stdin.write(RELEASE)
                self.process.stdin.close()
            except BrokenPipeError:
                pass
        self.process.wait(timeout=30)


def engine_arguments(choice: EngineChoice) -> list[str]:
    """The reaper's command-line arguments that open the same engine as `choice`."""
    arguments = []
    if choice.address and choice.address_named:
        arguments += ["--engine", choice.address]
    elif choice.kind:
        arguments += ["--engine", choice.kind]
    if choice.cluster:
        arguments += ["--cluster", str(choice.cluster)]
    return arguments


def _log(message: str) -> None:
    print(f"{time.strftime('%Y-%m-%d %H:%M:%S')} reaper {os.getpid()}: {message}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m labctl.ops.reaper")
    parser.add_argument("lab_file")
    parser.add_argument("--engine")
    parser.add_argument("--cluster")
    args = parser.parse_args(argv)
    _log(f"watching {args.lab_file} for its owner (pid {os.getppid()})")
    said = sys.stdin.buffer.read()   # returns when the owner closes its end, or dies
    if said.endswith(RELEASE):
        _log("released by its owner; leaving the lab alone")
        return 0
    _log("its owner is gone without taking the lab down; taking it down")
    from ..engines.factory import choose, open_engine, read_lab
    from .lifecycle import down
    from .lock import hold
    try:
        choice = choose(args.engine, args.cluster, Path(args.lab_file))
        lab = read_lab(args.lab_file, choice)
        engine = open_engine(lab.topology, choice)
        with hold(lab.topology, engine, "reap", _log):
            removed = down(lab.topology, engine, _log)
        _log(f"lab '{lab.name}' is down: {removed}")
        return 0
    except Exception as exc:  # the log is all a reaper has to say it failed
        _log(f"could not take the lab down: {exc.__class__.__name__}: {exc}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
