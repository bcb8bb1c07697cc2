"""What every verb needs from its arguments: the lab file, the engine the user chose, the
lab read for it, and that engine opened. Engines are imported only by verbs that run
something, so `validate` and `render` never load docker or paramiko."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from ..engines.factory import choose, read_lab
from ..engines.kinds import EngineChoice
from ..labfile.load import Lab

FILE_VARIABLE = "LABCTL_FILE"


def progress(message: str) -> None:
    print(f"labctl: {message}", file=sys.stderr, flush=True)


def lab_file(args: argparse.Namespace) -> Path:
    """-f FILE, a lab file given after the verb, $LABCTL_FILE, or ./lab.yaml."""
    return Path(args.file or getattr(args, "lab_file", None) or os.environ.get(FILE_VARIABLE) or "lab.yaml")


def engine_choice(args: argparse.Namespace) -> EngineChoice:
    return choose(getattr(args, "engine", None), getattr(args, "cluster", None), lab_file(args))


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
