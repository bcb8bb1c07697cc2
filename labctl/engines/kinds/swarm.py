"""A Swarm of the cluster file's machines (or of the one engine --engine ssh:// names, or of
this one): overlays, configs and secrets, addresses the Swarm assigns, images copied to
every machine."""

from __future__ import annotations

from ...model.traits import EngineTraits
from . import EngineChoice, EngineKind

TRAITS = EngineTraits(name="swarm", summary="Swarm", assigns_addresses=True, copies_files=True,
                      bridges=False, builds_images=False, document="stack",
                      ipv6="a Swarm gives overlay tasks IPv4 addresses only, and their IPv6 ones collide (moby #43615)")


def _open(topology, choice: EngineChoice):
    from ..base import bind_addresses
    from ..cluster import load_cluster
    from ..containers import docker_client, local_engine
    from ..ssh import parse_ssh_url, remote_client
    from ..swarm import LOCAL, SwarmEngine
    if choice.cluster is not None and not choice.address_named:
        engine = SwarmEngine.for_cluster(load_cluster(choice.cluster), local_engine())
    elif choice.address:
        target = parse_ssh_url(choice.address)
        engine = SwarmEngine({target.host: remote_client(target)}, target.host, image_source=local_engine())
    else:
        engine = SwarmEngine({LOCAL: docker_client()}, LOCAL)
    bind_addresses(topology, engine)
    return engine


KIND = EngineKind(TRAITS, answers=lambda name, choice: name == "swarm", open=_open)
