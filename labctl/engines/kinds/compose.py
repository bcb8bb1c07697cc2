"""Compose on this machine's engine: bridges, bind mounts, static addresses, builds."""

from __future__ import annotations

from ...model.traits import EngineTraits
from . import EngineChoice, EngineKind

TRAITS = EngineTraits(name="compose", summary="Compose", assigns_addresses=False,
                      copies_files=False, bridges=True, builds_images=True, document="compose")


def _open(topology, choice: EngineChoice):
    from ..compose import ComposeEngine
    return ComposeEngine()


KIND = EngineKind(TRAITS, answers=lambda name, choice: name == "compose" and not choice.address,
                  open=_open)
