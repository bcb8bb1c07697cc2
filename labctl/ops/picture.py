"""What `labctl graph --status` draws over the lab: each host's state and faults, the
impairments in force, and each check's result as `labctl check` last found it."""

from __future__ import annotations

import json
from pathlib import Path

from ..checks.result import CheckResult
from ..engines.base import Engine
from ..files import write_file
from ..model.shaping import effective, load_live
from ..model.topology import Topology
from ..render.graph import CheckMark, Overlay
from .status import lab_status

LAST_CHECKS = "last-check.json"


def remember_results(topology: Topology, results: list[CheckResult]) -> None:
    """Keep each check's last result, for pictures drawn later."""
    marks = [{"name": r.name, "passed": r.passed, "source": r.source, "target": r.target} for r in results]
    write_file(topology.folder, topology.state_folder / LAST_CHECKS, json.dumps(marks))


def last_results(topology: Topology) -> list[CheckMark]:
    path: Path = topology.state_folder / LAST_CHECKS
    try:
        marks = json.loads(path.read_text())
    except (OSError, ValueError):
        return []
    known = set(topology.hosts)
    return [CheckMark(m["name"], bool(m["passed"]), m["source"] if m.get("source") in known else "",
                      m["target"] if m.get("target") in known else None)
            for m in marks if isinstance(m, dict) and isinstance(m.get("name"), str)]


def overlay(topology: Topology, engine: Engine) -> Overlay:
    status = lab_status(topology, engine)
    impairments = {f"{interface.host}:{interface.network}": impairment.describe()
                   for interface, impairment in effective(topology, load_live(topology)).items()}
    return Overlay(states={row.name: row.state for row in status.hosts},
                   faults={row.name: row.faults for row in status.hosts if row.faults},
                   impairments=impairments, checks=last_results(topology))
