"""Writing a lab's rendered document (and the CA and certificates it names) beside its lab
file: compose/<lab>.yaml for Compose, compose/<lab>.stack.yaml for a Swarm stack, as the
engine's traits say."""

from __future__ import annotations

from pathlib import Path

from ..assets import host_tag
from ..model.shaping import LiveState, load_live
from ..model.topology import Topology
from ..names import compose_path, stack_path
from .compose import render, write_compose
from .pki import ensure_pki
from .stack import render_stack


def render_lab(topology: Topology, image: str | None = None, live: LiveState | None = None) -> Path:
    """Write the document, with the live changes made to the running lab unless `live`
    says otherwise. Where the engine is on another machine, files travel as copies, not
    bind mounts (a stack always copies them)."""
    pki = ensure_pki(topology, topology.state_folder / "pki")
    live = live if live is not None else load_live(topology)
    image = image or host_tag()
    if topology.traits.document == "stack":
        # Sidecars name addresses, which a Swarm gives only once the lab runs.
        output = stack_path(topology)
        document = render_stack(topology, image, pki, output, live if topology.addresses_bound else None)
    else:
        output = compose_path(topology)
        document = render(topology, image, pki, output, live, topology.traits.copies_files)
    write_compose(document, output, topology.file)
    return output
