"""The `impair` verb's work: change or clear a running lab's impairments, and show what
every interface gets and whether its sidecar has applied it."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Callable

from ..engines.base import Engine
from ..errors import LabError
from ..model.impairment import KINDS, Impairment
from ..model.shaping import change_impairment, clear_impairment, effective, load_live
from ..model.topology import Topology
from ..names import net_service
from .events import publish
from .faults import apply_live

Progress = Callable[[str], None]


@dataclass
class ImpairmentRow:
    interface: str
    impairment: Impairment
    mechanism: str
    applied: str

    def as_json(self) -> dict[str, Any]:
        values = self.impairment.values()
        return {"interface": self.interface, **{name: values.get(name) for name in KINDS},
                "mechanism": self.mechanism, "applied": self.applied}


def change(topology: Topology, engine: Engine, target: str | None, values: dict[str, str],
           clear: bool, progress: Progress) -> None:
    """Record `impair TARGET --field value...` (or `--clear`) and apply it."""
    if clear and values:
        raise LabError("give either --clear or new values, not both")
    if not clear and not values:
        raise LabError("nothing to change: give " + ", ".join(f"--{name}" for name in KINDS)
                       + ", or --clear, or --show")
    if not target and not clear:
        raise LabError("name a TARGET to impair: NETWORK, HOST or HOST:NETWORK")
    live = load_live(topology)
    if clear:
        clear_impairment(topology, live, target)
    else:
        change_impairment(topology, live, target or "", values)
    apply_live(topology, engine, progress, live)
    if clear:
        publish(topology, engine, "impairment", "cleared", target or "", target=target or "")
    else:
        publish(topology, engine, "impairment", "applied", target or "", target=target, values=values)


def impairment_rows(topology: Topology, engine: Engine) -> list[ImpairmentRow]:
    live = load_live(topology)
    states = {state.name: state for state in engine.states(topology)}
    rows = []
    for interface, impairment in effective(topology, live).items():
        sidecar = states.get(net_service(interface.host))
        host_state = states[interface.host].state if interface.host in states else "missing"
        mechanism, applied = "-", f"no (host {host_state})"
        if sidecar is not None and host_state == "running":
            report = _first_json_line(engine.helper_logs(topology, net_service(interface.host)))
            mechanism = report.get("mechanism", "-")
            applied = "yes" if sidecar.ready else f"no ({sidecar.state})"
        rows.append(ImpairmentRow(str(interface), impairment, mechanism, applied))
    return rows


def _first_json_line(text: str) -> dict:
    for line in text.splitlines():
        if line.startswith("{"):
            try:
                return json.loads(line)
            except ValueError:
                return {}
    return {}
