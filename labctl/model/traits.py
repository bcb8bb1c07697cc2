"""What an engine can do, as the model needs to know it. Each engine kind declares its
traits (labctl/engines/kinds/); validation and rendering read them here instead of asking
which engine it is, so a lab the chosen engine cannot run is refused before anything runs."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class EngineTraits:
    name: str                 # what --engine and the lab file's `engine:` call it
    summary: str              # one line for --help and errors
    assigns_addresses: bool   # the engine picks host addresses itself (so none may be static)
    copies_files: bool        # files reach hosts as copies (configs, secrets), not bind mounts
    bridges: bool             # networks are Linux bridges on one machine (else overlays)
    builds_images: bool       # `build:` hosts can be built where the lab runs
    document: str             # which rendered document it runs: "compose" or "stack"
    in_lab_file: bool = True  # may a lab file name it in `engine:`
    ipv6: str | None = None   # why the engine's networks cannot carry IPv6; None: they can


def check_engine_can_run(topology, traits: EngineTraits) -> None:
    """What the engine cannot honour, refused with what to write instead; Docker would
    drop it silently. `topology` is a model.topology.Topology."""
    where = f"on {traits.summary}"
    for network in topology.networks.values():
        if network.subnet6 is not None and traits.ipv6:
            raise topology.error(("networks", network.name, "subnet6"),
                                 f"IPv6 is not available {where}: {traits.ipv6}; drop subnet6 "
                                 "or run the lab on one machine (--engine compose)")
    for host in topology.hosts.values():
        at = ("hosts", host.name)
        if traits.assigns_addresses:
            for attachment in host.attachments:
                if attachment.addresses:
                    raise topology.error(attachment.key_path,
                                         f"a static address ({attachment.addresses[0]}) is not available {where}, "
                                         "which assigns task addresses itself; write 'auto' (or list the "
                                         "network) and reach the host by its name: labctl resolves the "
                                         "addresses after deploy")
            if host.routes:
                raise topology.error(at + ("routes",), f"routes via a fixed address are not available {where}, "
                                     "where addresses are assigned at deploy; mark the gateway "
                                     "host 'router: true' and labctl routes through it")
        if host.build and not traits.builds_images:
            raise topology.error(at + ("build",), f"build is not available {where} (it deploys "
                                 "images, it does not build them); build and tag the image first "
                                 "(docker build -t NAME .) and give it as image: NAME")
        if traits.copies_files:
            for index, mount in enumerate(host.files):
                if mount.writable:
                    raise topology.error(at + ("files", index),
                                         f"writable files are not available {where} (files travel there "
                                         "as read-only copies); drop ':rw' and have the program write elsewhere")
