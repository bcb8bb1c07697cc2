"""What every verb needs from its arguments: the lab file, the engine the user chose, the
lab read for it, and that engine opened. Engines are imported only by verbs that run
something, so `validate` and `render` never load docker or paramiko."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

from ..engines.factory import choose, read_lab
from ..engines.kinds import EngineChoice
from ..errors import UsageError
from ..labfile.load import Lab
from ..progress import Counted
from ..text import one_line

FILE_VARIABLE = "LABCTL_FILE"
LAB_FILE_SUFFIXES = (".yaml", ".yml")


class Progress:
    """How labctl says what it is doing, on standard error. A step that counts (hosts
    ready, containers removed, submissions graded) is a bar on a terminal (tqdm; no colour
    where NO_COLOR is set) and a line at most every second elsewhere, its last always.
    Each message is one line, its controls written out: it may quote a student's text."""

    def __init__(self, stream=None):
        self._stream = stream     # None: standard error as it is when a message comes
        self.bars: dict[str, Any] = {}
        self.printed: dict[str, float] = {}

    @property
    def stream(self):
        return self._stream or sys.stderr

    def __call__(self, message: str) -> None:
        if isinstance(message, Counted) and message.total > 0:
            self._count(message)
        elif self.bars:
            from tqdm import tqdm
            tqdm.write(f"labctl: {one_line(message)}", file=self.stream)
        else:
            print(f"labctl: {one_line(message)}", file=self.stream, flush=True)

    def _count(self, message: Counted) -> None:
        finished = message.done >= message.total
        if not self.stream.isatty():
            now = time.monotonic()
            if finished or now - self.printed.get(message.step, 0.0) >= 1.0:
                print(f"labctl: {one_line(message)}", file=self.stream, flush=True)
                self.printed[message.step] = now
            return
        from tqdm import tqdm
        bar = self.bars.get(message.step)
        if bar is None:
            bar = self.bars[message.step] = tqdm(
                total=message.total, desc=f"labctl: {message.step}", file=self.stream, leave=False,
                colour=None if os.environ.get("NO_COLOR") else "green", dynamic_ncols=True)
        bar.total = message.total
        bar.update(message.done - bar.n)
        bar.set_postfix_str(one_line(message).split(": ", 1)[-1][:60], refresh=True)
        if finished:
            bar.close()
            del self.bars[message.step]
            print(f"labctl: {one_line(message)}", file=self.stream, flush=True)


progress = Progress()


def lab_file(args: argparse.Namespace) -> Path:
    """-f FILE (before or after the verb), else the lab file given as an argument, else
    $LABCTL_FILE, else ./lab.yaml."""
    given, argument = getattr(args, "file", None), getattr(args, "lab_file", None)
    if given and argument and Path(given) != Path(argument):
        raise UsageError(f"two lab files: -f {one_line(given, 200)} and {one_line(argument, 200)}; give one")
    return Path(given or argument or os.environ.get(FILE_VARIABLE) or "lab.yaml")


def names_lab_file(argument: str) -> bool:
    """Whether a verb's first argument is its lab file: an existing file ending .yaml/.yml."""
    return argument.endswith(LAB_FILE_SUFFIXES) and Path(argument).is_file()


def engine_choice(args: argparse.Namespace) -> EngineChoice:
    return choose(getattr(args, "engine", None), getattr(args, "cluster", None), lab_file(args))


def engine_only(args: argparse.Namespace) -> EngineChoice:
    """The engine for a verb that reads no lab file (ls, down NAME): --engine, else
    $LABCTL_ENGINE, else compose; a Swarm's machines from --cluster, else ./cluster.yaml."""
    return choose(getattr(args, "engine", None), getattr(args, "cluster", None), None)


def load(args: argparse.Namespace) -> Lab:
    return read_lab(lab_file(args), engine_choice(args))


def locked(args: argparse.Namespace, lab: Lab, engine, operation: str):
    """The lab's lock for an operation that changes it (waits, or refuses with --no-wait)."""
    from ..ops.lock import hold
    return hold(lab.topology, engine, operation, progress, wait=not getattr(args, "no_wait", False))


def open_lab(args: argparse.Namespace):
    """The lab and its engine, connected: (lab, engine)."""
    from ..engines.factory import open_engine
    lab = load(args)
    return lab, open_engine(lab.topology, engine_choice(args))
