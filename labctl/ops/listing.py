"""Labs found on an engine by their labels, with no lab file read: `labctl ls` lists them,
and `labctl down NAME` removes one whose folder may be gone, through the same lock and the
same `down` as a lab file's (labctl.ops.lifecycle)."""

from __future__ import annotations

import re
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..engines.base import Engine, LabSummary
from ..engines.factory import open_engine, traits_for
from ..engines.kinds import EngineChoice
from ..errors import UsageError
from ..model.topology import LAB_NAME_PATTERN, Topology
from ..model.yamlsource import Source
from ..text import one_line
from . import lifecycle
from .lock import hold

Progress = Callable[[str], None]
DEFAULT_KIND = "compose"


@dataclass
class RunningLab:
    """One row of `labctl ls`."""
    name: str
    folder: str | None
    engine: str
    hosts_ready: int
    hosts_total: int
    age: float | None         # seconds since it came up

    def as_json(self) -> dict:
        return {"name": self.name, "folder": self.folder, "engine": self.engine,
                "hosts": {"ready": self.hosts_ready, "total": self.hosts_total},
                "age_seconds": None if self.age is None else round(self.age)}


def engine_name(choice: EngineChoice) -> str:
    """How `ls` names the engine it asked: compose, swarm, or the ssh:// address of Compose's."""
    kind = choice.kind or DEFAULT_KIND
    return choice.address if choice.address and kind == DEFAULT_KIND else kind


def stand_in(name: str, choice: EngineChoice, folder: Path | None = None) -> Topology:
    """A lab known by its name alone: what the engine and the lock need to find, hold and
    remove everything carrying its label. Its folder is where the lab came from, if known;
    else a folder of its own, so clearing its state touches nothing of anyone's."""
    traits = traits_for(choice)[choice.kind or DEFAULT_KIND]
    file = (folder or Path(tempfile.gettempdir())) / "lab.yaml"
    return Topology(name, file, {}, {}, Source(str(file), {}), traits)


def _open(choice: EngineChoice) -> Engine:
    return open_engine(stand_in("", choice), choice)


def running_labs(choice: EngineChoice) -> list[RunningLab]:
    """The labs the chosen engine holds anything of, by name."""
    now = time.time()
    return [RunningLab(lab.name, lab.folder, engine_name(choice), lab.hosts_ready, lab.hosts_total,
                       None if lab.created is None else max(0.0, now - lab.created))
            for lab in _open(choice).labs()]


def down_named(name: str, choice: EngineChoice, progress: Progress, wait: bool = True) -> dict[str, int]:
    """Remove every container, network, volume and built image (on a Swarm: service,
    config and secret) carrying lab `name`'s label, and nothing else. Refuses a name
    nothing carries."""
    engine = _open(choice)
    found: LabSummary | None = None
    if re.fullmatch(LAB_NAME_PATTERN, name):
        found = next((lab for lab in engine.labs() if lab.name == name), None)
    if found is None:
        raise UsageError(f"no lab named '{one_line(name, 100)}' on the {engine_name(choice)} engine: "
                         "nothing there carries that name ('labctl ls' lists the labs there)")
    folder = Path(found.folder) if found.folder and Path(found.folder).is_dir() else None
    with ExitStack() as stack:
        if folder is None:   # gone, or never labelled: its state has nowhere to be cleared
            folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="labctl-")))
        topology = stand_in(name, choice, folder)
        with hold(topology, engine, "down", progress, wait=wait):
            return lifecycle.down(topology, engine, progress)
