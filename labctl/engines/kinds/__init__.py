"""Engine kinds: each is one module here that declares a `KIND`, found by looking. A kind
says what it can do (its traits, which validation and rendering read) and how to open an
engine of it; the runtime it opens is imported only then, so reading a lab file never
loads docker or paramiko."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from ...model.traits import EngineTraits
from ...registry import declared

if TYPE_CHECKING:
    from ...model.topology import Topology
    from ..base import Engine


@dataclass(frozen=True)
class EngineChoice:
    """What the user asked for: a kind (compose or swarm, else the lab file's), an engine
    at an ssh:// address, and the cluster file of a Swarm's machines."""
    kind: str | None = None
    address: str | None = None
    cluster: Path | None = None
    address_named: bool = False   # given by --engine, not only found in $DOCKER_HOST


@dataclass(frozen=True)
class EngineKind:
    traits: EngineTraits
    # Which name this kind answers to in a run: the lab file's (or --engine's) kind name,
    # given the choice. Compose over an ssh:// address is the ssh kind.
    answers: Callable[[str, EngineChoice], bool]
    open: Callable[[Topology, EngineChoice], Engine]

    @property
    def name(self) -> str:
        return self.traits.name


@cache
def engine_kinds() -> dict[str, EngineKind]:
    return {kind.name: kind for kind in declared(__name__, __path__, "KIND", EngineKind)}
