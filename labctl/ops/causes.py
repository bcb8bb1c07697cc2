"""Why a check failed, beyond what the client saw: a host on its path that is not running,
or a fault in force on it (a partition, a disconnection, an impairment). A check that
timed out through a stopped router says "router gw is not running", not only "timeout"."""

from __future__ import annotations

from ..checks.result import CheckResult
from ..engines.base import Engine, HostState
from ..model.addressing import routers_between
from ..model.shaping import effective, load_live
from ..model.topology import Topology


def _not_running(state: HostState | None, role: str, name: str) -> str | None:
    if state is None:
        return f"{role} {name} does not exist (run 'labctl up')"
    if state.state == "running":
        return None
    if state.state == "exited" and state.exit_code is not None:
        return f"{role} {name} exited with code {state.exit_code}"
    return f"{role} {name} is {state.state}"


def explain(topology: Topology, engine: Engine, results: list[CheckResult]) -> None:
    """Add to each failed exchange's reason what is down or bent on its path."""
    failed = [(r, topology.hosts[r.target]) for r in results
              if not r.passed and r.source and r.target in topology.hosts]
    if not failed:
        return
    states = {state.name: state for state in engine.states(topology) if state.role == "host"}
    live = load_live(topology)
    impaired = effective(topology, live)
    attached: dict[str, list[str]] = {}
    for result, target in failed:
        source = topology.hosts[result.source]
        routers = routers_between(topology, source, target)
        notes = [note for role, host in (("client", source), *(("router", r) for r in routers),
                                         ("server", target))
                 if (note := _not_running(states.get(host.name), role, host.name))]
        on_path = {source.name, target.name, *(router.name for router in routers)}
        for sides in live.partitions:
            if (source.name in sides[0] and target.name in sides[1]) or \
                    (source.name in sides[1] and target.name in sides[0]):
                notes.append(f"partition {','.join(sides[0])} -- {','.join(sides[1])} is in force")
        for name in sorted(on_path):
            state = states.get(name)
            if state is None or state.state != "running":
                continue
            if name not in attached:
                attached[name] = engine.attached(topology, name)
            missing = [n for n in topology.hosts[name].networks if n not in attached[name]]
            if missing:
                notes.append(f"{name} is disconnected from {', '.join(missing)}")
        notes += [f"impairment on {interface} ({value.describe()}) is in force"
                  for interface, value in impaired.items() if interface.host in on_path]
        if notes:
            result.reason += ("; " if result.reason else "") + "; ".join(notes)
