"""The lab lifecycle: prepare (image, CA, Compose file), up, verify (checks), down.

Every verb of the CLI and the pytest plugin goes through these functions, so a failed or
interrupted `up` is cleaned up the same way wherever it is called from.
"""

from __future__ import annotations

import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..assets import host_tag
from ..checks.result import CheckResult
from ..checks.spec import CheckSpec
from ..engines.base import READY_TIMEOUT, Engine, bind_addresses
from ..engines.images import ensure_host_image
from ..errors import LabError
from ..labfile.load import Lab
from ..model.shaping import forget_live, load_live, sidecar_specs
from ..model.topology import Topology
from ..names import net_service
from .picture import remember_results
from ..render.lab import render_lab
from .checks import timed_run
from .events import publish, publish_all

Progress = Callable[[str], None]


@dataclass
class Prepared:
    image: str
    document: Path


def build_image(address: str | None, progress: Progress, source: str = "auto") -> str:
    """`labctl image build`: the host image on this machine's engine, or on the one at an
    ssh:// address."""
    from ..engines.containers import docker_client
    from ..engines.ssh import parse_ssh_url, remote_client
    client = remote_client(parse_ssh_url(address)) if address else docker_client()
    return ensure_host_image(client, progress, source=source)


def prepare(topology: Topology, engine: Engine, progress: Progress) -> Prepared:
    image = ensure_host_image(engine.image_client, progress)
    return Prepared(image, render_lab(topology, image))


def up(topology: Topology, engine: Engine, progress: Progress,
       timeout: float = READY_TIMEOUT) -> Prepared:
    """Bring the lab up and wait until it is ready. On any failure, or Ctrl-C, remove what
    this `up` created before passing the error on: the whole lab if it was not running,
    else only what it added, so a running lab survives a second `up` that fails."""
    started = time.monotonic()
    before = engine.snapshot(topology)
    if not before:
        forget_live(topology)  # left by a lab that did not go down through labctl
    for note in engine.differences():
        progress(note)
    prepared = prepare(topology, engine, progress)
    try:
        engine.deploy(topology, prepared.document, progress, timeout)
        bind_addresses(topology, engine)
        if topology.traits.assigns_addresses:
            _start_sidecars(topology, engine, prepared, progress)
    except BaseException as exc:
        reason = "interrupted" if isinstance(exc, KeyboardInterrupt) else "up failed"
        with shielded_from_interrupts():
            if before:
                progress(f"{reason}: the lab was running before; removing only what this up added")
                engine.discard(topology, before)
            else:
                progress(f"{reason}: removing what was created")
                engine.destroy(topology, progress)
        raise
    publish_all(topology, engine, (("host", "ready", host, {}) for host in topology.hosts))
    publish(topology, engine, "lab", "up", hosts=len(topology.hosts), seconds=round(time.monotonic() - started, 3))
    return prepared


def _start_sidecars(topology: Topology, engine: Engine, prepared: Prepared, progress: Progress) -> None:
    """Where the engine assigns addresses, the declared impairments' sidecars start once
    they are known."""
    live = load_live(topology)
    sidecars = [net_service(host) for host in sidecar_specs(topology, live)]
    if sidecars:
        prepared.document = render_lab(topology, prepared.image, live)
        engine.update(topology, prepared.document, sidecars, progress)


def down(topology: Topology, engine: Engine, progress: Progress) -> dict[str, int]:
    with shielded_from_interrupts():
        removed = engine.destroy(topology, progress)
        forget_live(topology)
        publish(topology, engine, "lab", "down", removed=removed)
        return removed


def check(lab: Lab, engine: Engine, names: list[str] | None = None,
          pattern: str | None = None, deadline: float | None = None) -> tuple[list[CheckResult], float]:
    """Run the selected checks; past `deadline` (a time.monotonic()), those not yet started
    fail, saying so."""
    selected = select_checks(lab.checks, names, pattern)
    results, seconds = timed_run(lab.topology, engine, selected, host_tag(), deadline)
    remember_results(lab.topology, results)
    return results, seconds


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
    """Cleanup must finish: hold Ctrl-C, SIGTERM and SIGHUP until it has."""

    def __enter__(self):
        self._previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
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
