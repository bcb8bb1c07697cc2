"""The one way to a lab and its engine, shared by the CLI, the pytest plugin and the bench:
what the user chose (`choose`), the lab file read for that engine (`read_lab`), and the
engine opened for it (`open_engine`)."""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import LabError
from ..labfile.load import Lab, load_lab
from ..model.topology import Topology
from ..model.traits import EngineTraits
from .base import Engine
from .kinds import EngineChoice, engine_kinds

ENGINE_VARIABLE = "LABCTL_ENGINE"
CLUSTER_VARIABLE = "LABCTL_CLUSTER"
CLUSTER_FILE = "cluster.yaml"   # a Swarm lab's machines, beside its lab file


def lab_names() -> list[str]:
    """The names a lab file's `engine:` and --engine may give."""
    return sorted({kind.name for kind in engine_kinds().values() if kind.traits.in_lab_file})


def choose(engine: str | None = None, cluster: str | Path | None = None,
           lab_file: Path | None = None) -> EngineChoice:
    """--engine (or $LABCTL_ENGINE): a kind, or an ssh:// address; $DOCKER_HOST may name an
    ssh:// engine too. --cluster (or $LABCTL_CLUSTER), else cluster.yaml beside the lab file."""
    value = engine or os.environ.get(ENGINE_VARIABLE) or ""
    address = value if value.startswith("ssh://") else None
    if value and address is None and value not in lab_names():
        raise LabError(f"--engine {value}: expected one of {', '.join(lab_names())}, "
                       "or an ssh://user@host address")
    docker_host = os.environ.get("DOCKER_HOST", "")
    named = address is not None
    if address is None and docker_host.startswith("ssh://"):
        address = docker_host
    cluster_path = cluster or os.environ.get(CLUSTER_VARIABLE)
    if cluster_path:
        cluster_file: Path | None = Path(cluster_path)
    else:
        beside = (lab_file.resolve().parent if lab_file else Path.cwd()) / CLUSTER_FILE
        cluster_file = beside if beside.exists() else None
    return EngineChoice(kind=None if named or not value else value, address=address,
                        cluster=cluster_file, address_named=named)


def traits_for(choice: EngineChoice) -> dict[str, EngineTraits]:
    """What each name a lab file may give means in this run."""
    kinds = engine_kinds().values()
    return {name: next(kind.traits for kind in kinds if kind.answers(name, choice))
            for name in lab_names()}


def read_lab(path: str | Path, choice: EngineChoice | None = None) -> Lab:
    """The lab file, validated for the engine it will run on. Loads no docker or paramiko."""
    choice = choice or EngineChoice()
    return load_lab(path, traits_for(choice), choice.kind)


def open_engine(topology: Topology, choice: EngineChoice | None = None) -> Engine:
    """The engine the lab runs on, connected (and on a Swarm, the assigned addresses read
    into the topology)."""
    return engine_kinds()[topology.traits.name].open(topology, choice or EngineChoice())
