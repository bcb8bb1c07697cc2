"""Compose on one engine reached over SSH (`--engine ssh://user@host`): its host key is
verified, files travel as copies (this machine's paths mean nothing there) and images are
copied to it from where labctl runs."""

from __future__ import annotations

from ...model.traits import EngineTraits
from . import EngineChoice, EngineKind

TRAITS = EngineTraits(name="ssh", summary="an engine over SSH", assigns_addresses=False,
                      copies_files=True, bridges=True, builds_images=True, document="compose",
                      in_lab_file=False)


def _open(topology, choice: EngineChoice):
    from ..compose import ComposeEngine
    from ..containers import local_engine
    from ..ssh import parse_ssh_url, remote_client
    assert choice.address is not None
    return ComposeEngine(remote_client(parse_ssh_url(choice.address)), image_source=local_engine())


KIND = EngineKind(TRAITS, answers=lambda name, choice: name == "compose" and bool(choice.address),
                  open=_open)
