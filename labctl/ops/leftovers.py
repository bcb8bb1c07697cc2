"""Faults a run left in force when it could not undo them (SIGKILL, a lost terminal, a
machine that went down): a scenario marks the lab while it runs, and a mark whose process
is gone means what the live state holds was left behind. `check`, `status`, `run` and `up`
name it; `heal` clears it."""

from __future__ import annotations

import json
import os
import socket
import time

from ..engines.base import Engine
from ..files import remove_file, write_file
from ..model.impairment import Impairment
from ..model.shaping import load_live
from ..model.topology import Topology
from ..names import LAB_LABEL, source_digest

RUN_FILE = "run.json"


def _marker(topology: Topology):
    return topology.state_folder / RUN_FILE


def begin_run(topology: Topology, scenario: str) -> None:
    write_file(topology.folder, _marker(topology), json.dumps(
        {"scenario": scenario, "pid": os.getpid(), "machine": socket.gethostname(), "started": time.time()}))


def end_run(topology: Topology) -> None:
    remove_file(topology.folder, _marker(topology))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def interrupted_run(topology: Topology) -> dict | None:
    """The mark of a run that ended without undoing its faults, or None."""
    try:
        mark = json.loads(_marker(topology).read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {"scenario": "?", "started": 0}
    if mark.get("machine") == socket.gethostname() and mark.get("pid") != os.getpid() \
            and _alive(int(mark.get("pid", 0))):
        return None  # still running
    if mark.get("pid") == os.getpid():
        return None
    return mark


def leftovers(topology: Topology) -> list[str]:
    """One line per fault an interrupted run left in force, each saying how to remove it."""
    mark = interrupted_run(topology)
    if mark is None:
        return []
    when = time.strftime("%H:%M:%S", time.localtime(mark.get("started", 0)))
    origin = f"left by an interrupted run of '{mark.get('scenario', '?')}' at {when}; 'labctl heal' removes it"
    live = load_live(topology)
    notes = [f"partition {','.join(a)} -- {','.join(b)} {origin}" for a, b in live.partitions]
    for change in live.changes:
        what = "cleared impairments" if change.get("clear") else \
            "impairment " + Impairment(**change.get("set", {})).describe()
        notes.append(f"{what} on {change['target']} {origin}")
    return notes or [f"a run of '{mark.get('scenario', '?')}' was interrupted at {when}; "
                     "'labctl heal' undoes any host fault it left"]


def renamed_labs(topology: Topology, engine: Engine) -> list[str]:
    """Labs still running from this same lab file under another name (its `name:` changed
    since they came up): `down` under the new name cannot see them."""
    found = engine.labs_from(source_digest(topology))
    return [f"lab '{name}' from this same file is still running under its old name; "
            f"remove it with: docker rm -f $(docker ps -aq --filter label={LAB_LABEL}={name}) "
            f"&& docker network prune --filter label={LAB_LABEL}={name}"
            for name in sorted(found - {topology.name})]
