"""The lab lifecycle: prepare (image, CA, Compose file), up, verify (checks), down.

Every verb of the CLI and the pytest plugin goes through these functions, so a failed or
interrupted `up` is cleaned up the same way wherever it is called from.
"""

from __future__ import annotations

import signal
from ipaddress import IPv4Address
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .checks import CheckResult, timed_run
from .checkspec import CheckSpec
from .engine import READY_TIMEOUT, Engine
from .errors import LabError
from .images import ensure_host_image, host_tag
from .pki import ensure_pki
from .render import compose_path, net_service, render, write_compose
from .stack import render_stack, stack_path
from .shaping import LiveState, forget_live, load_live, sidecar_specs
from .topology import Topology

Progress = Callable[[str], None]


@dataclass
class Prepared:
    image: str
    document: Path


def render_lab(topology: Topology, image: str | None = None, live: LiveState | None = None,
               copies_files: bool = False) -> Path:
    """Write compose/<lab>.yaml, or compose/<lab>.stack.yaml for a Swarm (and the lab's CA
    and certificates they use), with the live changes made to the running lab unless
    `live` says otherwise. `copies_files`: the engine is on another machine, so files
    travel as copies, not bind mounts (a stack always copies them)."""
    pki = ensure_pki(topology, topology.state_folder / "pki")
    live = live if live is not None else load_live(topology)
    if topology.engine == "swarm":
        # Sidecars name addresses, which a Swarm gives only once the lab runs.
        output = stack_path(topology)
        document = render_stack(topology, image or host_tag(), pki, output,
                                live if topology.addresses_bound else None)
    else:
        output = compose_path(topology)
        document = render(topology, image or host_tag(), pki, output, live, copies_files)
    write_compose(document, output, topology.file)
    return output


def bind_addresses(topology: Topology, engine: Engine) -> Topology:
    """Take the addresses the engine assigned (a Swarm's) into the topology, so checks,
    transcripts and status use the real ones."""
    assigned = engine.addresses(topology)
    for host, networks in assigned.items():
        if host not in topology.hosts:
            continue
        for attachment in topology.hosts[host].attachments:
            if attachment.network in networks:
                attachment.address = IPv4Address(networks[attachment.network])
    topology.addresses_bound = topology.addresses_bound or bool(assigned)
    return topology


def prepare(topology: Topology, engine: Engine, progress: Progress) -> Prepared:
    image = ensure_host_image(engine.image_client, progress)
    return Prepared(image, render_lab(topology, image, copies_files=engine.copies_files))


def up(topology: Topology, engine: Engine, progress: Progress,
       timeout: float = READY_TIMEOUT) -> Prepared:
    """Bring the lab up and wait until it is ready. On any failure, or Ctrl-C, remove
    whatever was created before passing the error on."""
    if not engine.states(topology):
        forget_live(topology)  # left by a lab that did not go down through labctl
    prepared = prepare(topology, engine, progress)
    try:
        engine.deploy(topology, prepared.document, progress, timeout)
        bind_addresses(topology, engine)
        if topology.engine == "swarm":
            _start_sidecars(topology, engine, prepared, progress)
    except BaseException as exc:
        reason = "interrupted" if isinstance(exc, KeyboardInterrupt) else "up failed"
        progress(f"{reason}: removing what was created")
        with shielded_from_interrupts():
            engine.destroy(topology, progress)
        raise
    return prepared


def _start_sidecars(topology: Topology, engine: Engine, prepared: Prepared, progress: Progress) -> None:
    """On a Swarm, the declared impairments' sidecars start once the addresses are known."""
    live = load_live(topology)
    sidecars = [net_service(host) for host in sidecar_specs(topology, live)]
    if sidecars:
        prepared.document = render_lab(topology, prepared.image, live, copies_files=True)
        engine.update(topology, prepared.document, sidecars, progress)


def down(topology: Topology, engine: Engine, progress: Progress) -> dict[str, int]:
    with shielded_from_interrupts():
        removed = engine.destroy(topology, progress)
        forget_live(topology)
        return removed


def check(topology: Topology, engine: Engine, names: list[str] | None = None,
          pattern: str | None = None) -> tuple[list[CheckResult], float]:
    selected = select_checks(topology.checks, names, pattern)
    return timed_run(topology, engine, selected, host_tag())


def select_checks(checks: list[CheckSpec], names: list[str] | None, pattern: str | None) -> list[CheckSpec]:
    selected = checks
    if names:
        known = {check.name for check in checks}
        unknown = [name for name in names if name not in known]
        if unknown:
            raise LabError(f"no check named {unknown[0]!r}; checks: " + ", ".join(sorted(known)))
        selected = [check for check in checks if check.name in names]
    if pattern:
        selected = [check for check in selected if pattern.lower() in check.name.lower()]
    if not selected:
        raise LabError("no checks selected" if checks else "the lab declares no checks")
    return selected


class shielded_from_interrupts:
    """Cleanup must finish: hold Ctrl-C and SIGTERM until it has."""

    def __enter__(self):
        self._previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            for sig in self._previous:
                signal.signal(sig, signal.SIG_IGN)
        except ValueError:  # not the main thread: signals cannot reach us here anyway
            self._previous = {}
        return self

    def __exit__(self, *exc_info):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        return False
