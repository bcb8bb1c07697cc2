"""Reading a lab file: one function, `load_lab`, returns the whole parsed lab (its topology
with addresses resolved, its impairments, checks and scenarios) or raises one LabFileError.

The engine the lab will run on is named by the caller with its traits (labctl.engines
knows them), so what that engine cannot do is refused here, before anything runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ..checks.kinds import check_kinds
from ..checks.spec import CheckSpec, parse_checks
from ..errors import LabError
from ..model.addressing import resolve_addresses
from ..model.shaping import parse_impairments
from ..model.topology import Topology, parse_topology
from ..model.traits import EngineTraits, check_engine_can_run
from ..model.yamlsource import describe, load_source
from .scenarios import Scenario, parse_scenarios

# The lab file's top keys, with what each holds (`labctl schema` gives editors the texts).
TOP_KEYS = {
    "name": "the lab's name: lowercase letters, digits, '-' and '_'",
    "engine": "the engine the lab runs on, such as compose (the default) or swarm",
    "networks": "the lab's networks by name, each with an IPv4 subnet, an IPv6 subnet6, or both",
    "hosts": "the lab's hosts by name: their networks, and the services or program they run",
    "impairments": "impairments the lab starts with, by target (a network, a host, or host:network): "
                   "delay, loss, rate...",
    "checks": "the exchanges checked between hosts, each naming one kind: tcp, udp, http, dns, ping...",
    "scenarios": "named lists of steps that bend the lab (impair, fault, heal) and check it between the bends",
}
DEFAULT_ENGINE = "compose"


@dataclass
class Lab:
    """Everything a lab file says."""
    topology: Topology
    checks: list[CheckSpec] = field(default_factory=list)
    scenarios: dict[str, Scenario] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.topology.name

    @property
    def file(self) -> Path:
        return self.topology.file


def load_lab(path: str | Path, engines: Mapping[str, EngineTraits], engine: str | None = None) -> Lab:
    """Parse, validate and resolve a lab file. `engines` maps each name a lab may give in
    `engine:` to the traits of the engine it means in this run; `engine` overrides the
    file's own choice."""
    file = Path(path)
    source = load_source(file, display=str(path))
    top = source.mapping(source.data, (), TOP_KEYS, required=["name", "networks", "hosts"])
    named = list(engines)
    declared = top.get("engine", DEFAULT_ENGINE)
    if declared not in named:
        raise source.error(("engine",), f"expected one of {', '.join(named)}, got {describe(declared)}")
    chosen = engine or declared
    if chosen not in engines:
        raise LabError(f"unknown engine '{chosen}'; expected one of " + ", ".join(engines))
    topology = parse_topology(source, top, file, engines[chosen])
    check_engine_can_run(topology, topology.traits)
    resolve_addresses(topology)
    topology.impairments = parse_impairments(source, top.get("impairments"), topology)
    checks = parse_checks(source, top.get("checks"), topology, check_kinds())
    scenarios = parse_scenarios(source, top.get("scenarios"), topology, checks)
    return Lab(topology, checks, scenarios)
