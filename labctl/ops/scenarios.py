"""Running a scenario: its steps in order, each reported as it ends; whatever happens (a
failed step, Ctrl-C), the lab is put back as it was before the run: faults healed and live
impairments restored. labctl.labfile.scenarios reads scenarios from the lab file.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

from ..checks.result import CheckResult
from ..engines.base import Engine
from ..errors import LabError
from ..labfile.scenarios import Scenario, Step
from ..model.impairment import format_value
from ..model.shaping import LiveState, clear_impairment, load_live
from ..model.topology import Topology
from .checks import run_checks
from .events import publish
from .faults import apply_live, disconnect, heal, host_action, partition, reconnect
from .leftovers import begin_run, end_run, leftovers
from .lifecycle import shielded_from_interrupts

Progress = Callable[[str], None]


@dataclass
class StepResult:
    number: int
    step: Step
    passed: bool
    seconds: float
    detail: str = ""
    checks: list[CheckResult] = field(default_factory=list)


def run_scenario(topology: Topology, engine: Engine, scenario: Scenario, image: str,
                 progress: Progress, report: Callable[[StepResult], None]) -> list[StepResult]:
    """Run every step in order and report each as it ends. A step that cannot be carried
    out stops the run; failed checks do not. At the end, whatever happened (a failed step,
    Ctrl-C, SIGTERM, a closed terminal), the lab is put back as its file declares it: faults
    healed, live impairments and partitions cleared. While it runs, the lab is marked, so a
    run killed outright is named by the next command (labctl.ops.leftovers)."""
    for note in leftovers(topology):
        progress(note)
    results: list[StepResult] = []
    begin_run(topology, scenario.name)
    publish(topology, engine, "scenario", "started", scenario.name, steps=len(scenario.steps))
    try:
        for number, step in enumerate(scenario.steps, 1):
            started = time.monotonic()
            try:
                checks = _run_step(topology, engine, step, image, progress)
            except LabError as exc:
                result = StepResult(number, step, False, time.monotonic() - started, str(exc))
                results.append(result)
                _told(topology, engine, scenario, result)
                report(result)
                break
            failed = [c for c in checks if not c.passed]
            detail = "; ".join(f"'{c.name}': {c.reason}" for c in failed)
            result = StepResult(number, step, not failed, time.monotonic() - started, detail, checks)
            results.append(result)
            _told(topology, engine, scenario, result)
            report(result)
    finally:
        progress("restoring the lab as its file declares it")
        with shielded_from_interrupts():
            heal(topology, engine, progress)
            apply_live(topology, engine, progress, LiveState())
            if any(step.kind == "impair" for step in scenario.steps):
                publish(topology, engine, "impairment", "cleared", "", target="")
            end_run(topology)
            passed = sum(result.passed for result in results)
            publish(topology, engine, "scenario", "ended", scenario.name, passed=passed, failed=len(results) - passed)
    return results


def _told(topology: Topology, engine: Engine, scenario: Scenario, result: StepResult) -> None:
    publish(topology, engine, "scenario", "step", scenario.name, number=result.number, passed=result.passed,
            what=result.step.text, detail=result.detail)


def _run_step(topology: Topology, engine: Engine, step: Step, image: str, progress: Progress) -> list[CheckResult]:
    if step.kind == "impair":
        live = load_live(topology)
        for target, impairment in step.impairments.items():
            if impairment is None:
                clear_impairment(topology, live, target)
            else:
                live.changes.append({"target": target, "set": impairment.values()})
        apply_live(topology, engine, progress, live)
        for target, impairment in step.impairments.items():
            if impairment is None:
                publish(topology, engine, "impairment", "cleared", target, target=target)
            else:
                publish(topology, engine, "impairment", "applied", target, target=target,
                        values={name: format_value(name, value) for name, value in impairment.values().items()})
    elif step.kind == "fault":
        if step.action == "partition":
            partition(topology, engine, step.sides, progress)
        elif step.action == "disconnect":
            disconnect(topology, engine, step.target)
        elif step.action == "reconnect":
            reconnect(topology, engine, step.target, progress)
        else:
            host_action(topology, engine, step.target, step.action, progress)
    elif step.kind == "heal":
        heal(topology, engine, progress)
    else:
        return run_checks(topology, engine, step.checks, image)
    return []
