"""Scenarios: ordered steps that bend the lab and check it between the bends, as Molecule
runs side effects between verifies. This module reads them from the lab file;
labctl.ops.scenarios runs them.

    scenarios:
      partition:
        - fault: {partition: alice -- web}
        - check: {name: alice cannot reach web, from: alice, to: web:8080,
                  http: {path: /health, expect_error: timeout}}
        - heal: all
        - wait-for: web health via the router

Steps: `impair: {TARGET: {delay: 50ms, ...} | clear}`; `fault: {ACTION: HOST}` (stop,
start, kill, pause, unpause, restart, disconnect, reconnect) or `fault: {partition: A,B -- C}`;
`heal: all`; `check: NAME | [NAME, ...] | {an inline check}`; `wait-for: NAME` (or
`{check: NAME, within: 30s}`): the check is retried until it passes.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from ..checks.kinds import check_kinds
from ..checks.spec import CheckParser, CheckSpec
from ..errors import LabError
from ..model.faults import HOST_ACTIONS
from ..model.impairment import KINDS, Impairment, check_consistent, read_impairment
from ..model.shaping import parse_sides
from ..model.targets import resolve_target
from ..model.topology import Topology
from ..model.yamlsource import KeyPath, Source, describe, quote

# Each step, and each fault, with what it does (`labctl schema` gives editors the texts).
STEP_KINDS = {
    "impair": "change impairments: {TARGET: {delay: 50ms, loss: 5%}} or {TARGET: clear}",
    "fault": "one fault: {ACTION: HOST} such as {stop: web}, or {partition: 'A,B -- C'}",
    "heal": "heal every fault: heal: all",
    "check": "run checks now: a check's name, a list of names, or a check itself",
    "wait-for": "retry a check until it passes: its name, or {check: NAME, within: 30s} (30s unless given)",
}
FAULT_ACTIONS = {
    **HOST_ACTIONS,
    "disconnect": "disconnect a host from its networks, or from one: HOST[:NETWORK]",
    "reconnect": "reconnect a host, with its address, routes and impairments: HOST[:NETWORK]",
    "partition": "cut the hosts on one side off from those on the other: 'alice,bob -- web'",
}
WAIT_KEYS = {
    "check": "the check to retry: its name, a list of names, or a check itself",
    "within": "how long it may take to pass, such as 30s",
}
DEFAULT_WAIT = 30.0


@dataclass
class Step:
    kind: str
    text: str                                   # what the report says the step does
    impairments: dict[str, Impairment | None] = field(default_factory=dict)   # None: clear
    action: str = ""
    target: str = ""
    sides: list[list[str]] = field(default_factory=list)
    checks: list[CheckSpec] = field(default_factory=list)


@dataclass
class Scenario:
    name: str
    steps: list[Step]


def parse_scenarios(source: Source, raw: Any, topology: Topology, known: list[CheckSpec]) -> dict[str, Scenario]:
    items = source.named_mapping(raw, ("scenarios",), "scenario")
    parser = CheckParser(source, topology, check_kinds())
    scenarios = {}
    for name, body in items.items():
        path: KeyPath = ("scenarios", name)
        steps = [_parse_step(source, item, path + (index,), topology, parser, known)
                 for index, item in enumerate(source.sequence(body, path))]
        if not steps:
            raise source.error(path, "expected a list of steps: " + ", ".join(STEP_KINDS))
        scenarios[name] = Scenario(name, steps)
    return scenarios


def _parse_step(source: Source, raw: Any, path: KeyPath, topology: Topology, parser: CheckParser,
                known: list[CheckSpec]) -> Step:
    if not isinstance(raw, dict) or len(raw) != 1 or next(iter(raw)) not in STEP_KINDS:
        raise source.error(path, "expected one step: " + ", ".join(STEP_KINDS) + f", got {describe(raw)}")
    kind, value = next(iter(raw.items()))
    path = path + (kind,)
    if kind == "impair":
        targets = source.mapping(value, path, list(value) if isinstance(value, dict) else [])
        if not targets:
            raise source.error(path, "expected {TARGET: {delay: 50ms, loss: 5%}} or {TARGET: clear}")
        impairments: dict[str, Impairment | None] = {}
        for target, fields in targets.items():
            _resolve(source, topology, target, path + (target,), parser)
            if fields == "clear":
                impairments[target] = None
                continue
            spec = source.mapping(fields, path + (target,), KINDS)
            impairment = read_impairment(spec, lambda key, message: source.error(path + (target, key), message))
            check_consistent(impairment, lambda key, message: source.error(path + (target, key), message))
            impairments[target] = impairment
        text = "impair " + "; ".join(f"{target} {'clear' if value is None else value.describe()}"
                                     for target, value in impairments.items())
        return Step(kind, text, impairments=impairments)
    if kind == "fault":
        spec = source.mapping(value, path, FAULT_ACTIONS)
        if len(spec) != 1:
            raise source.error(path, "expected one fault: " + ", ".join(FAULT_ACTIONS))
        action, target = next(iter(spec.items()))
        if action == "partition":
            words = source.text(target, path + (action,), hint="such as 'alice,bob -- web'").split()
            try:
                sides = parse_sides(topology, words)
            except LabError as exc:
                raise source.error(path + (action,), str(exc)) from None
            return Step(kind, f"partition {','.join(sides[0])} -- {','.join(sides[1])}", action=action, sides=sides)
        target = source.text(target, path + (action,))
        if action in HOST_ACTIONS and target not in topology.hosts:
            raise source.error(path + (action,), str(topology.unknown_host(target)))
        _resolve(source, topology, target, path + (action,), parser)
        return Step(kind, f"{action} {target}", action=action, target=target)
    if kind == "heal":
        return Step(kind, "heal every fault")
    if kind == "wait-for" and isinstance(value, dict) and "check" in value and "from" not in value:
        spec = source.mapping(value, path, WAIT_KEYS, required=["check"])
        checks = _checks(source, spec["check"], path + ("check",), parser, known)
        within: float | None = source.duration(spec.get("within", DEFAULT_WAIT), path + ("within",))
    else:
        checks = _checks(source, value, path, parser, known)
        within = DEFAULT_WAIT if kind == "wait-for" else None
    if kind == "wait-for":
        checks = [_with_within(check, within) for check in checks]
    names = ", ".join(f"'{check.name}'" for check in checks)
    return Step(kind, f"wait for {names}" if kind == "wait-for" else f"check {names}", checks=checks)


def _with_within(check: CheckSpec, within: float | None) -> CheckSpec:
    again = copy.copy(check)
    again.within = within
    return again


def _resolve(source: Source, topology: Topology, target: str, path: KeyPath, parser: CheckParser) -> None:
    """Refuse a target that names no interface; each target is looked up once per lab."""
    def problem() -> str | None:
        try:
            resolve_target(topology, target)
        except LabError as exc:
            return str(exc)
        return None
    reason = parser.memo(("target", target), problem)
    if reason:
        raise source.error(path, reason)


def _checks(source: Source, raw: Any, path: KeyPath, parser: CheckParser,
            checks_of_lab: list[CheckSpec]) -> list[CheckSpec]:
    """Check names of the lab, or inline checks (which `labctl check` never runs alone)."""
    known = parser.memo(("checks by name", id(checks_of_lab), len(checks_of_lab)),
                        lambda: {check.name: check for check in checks_of_lab})
    items = raw if isinstance(raw, list) else [raw]
    checks = []
    for index, item in enumerate(items):
        item_path = path + (index,) if isinstance(raw, list) else path
        if isinstance(item, str):
            if item not in known:
                raise source.error(item_path, f"no check named {quote(item)}; give its name from checks:, "
                                   "or the check itself")
            checks.append(known[item])
        else:
            expanded = parser.parse_many(item, item_path)
            parser.link(expanded, checks_of_lab, item_path, indexed=False)
            checks.extend(expanded)
    return checks


