"""Readiness, confirmed once: when a long-running container (a host with built-in services
or a `ready:` probe, a network sidecar) is running, its probe runs in it, trying until it
answers; the container is ready when that one command succeeds. Nothing runs after it:
no container declares a healthcheck and nothing polls, so a lab that sits idle starts no
process in any host; `status` runs the same probe once, when asked (labctl.ops.status)."""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable

from ..errors import EngineError
from ..model.topology import Topology
from ..render.compose import SIDECAR_READY, readiness_probe, readiness_wait
from .base import ExecResult, HostState

PARALLEL = 16


def probe_of(topology: Topology, state: HostState) -> list[str] | None:
    if state.role == "host" and state.name in topology.hosts:
        return readiness_probe(topology.hosts[state.name])
    if state.role == "net":
        return ["CMD", *SIDECAR_READY]
    return None


class Confirmations:
    """Runs each container's probe once, in parallel, as containers come up."""

    def __init__(self, topology: Topology, run: Callable[[HostState, list[str]], ExecResult],
                 seconds: float):
        self.topology, self.run, self.seconds = topology, run, seconds
        self.pool = ThreadPoolExecutor(max_workers=PARALLEL)
        self.jobs: dict[str, Future] = {}

    def ready(self, state: HostState) -> bool:
        """Whether `state`'s container is ready; starts its probe the first time it runs.
        Raises EngineError if the probe gave up."""
        if state.role not in ("host", "net"):
            return state.ready
        if state.state != "running":
            return False
        probe = probe_of(self.topology, state)
        if probe is None:
            return True
        job = self.jobs.get(state.container)
        if job is None:
            job = self.jobs[state.container] = self.pool.submit(
                self.run, state, readiness_wait(probe, self.seconds))
        if not job.done():
            return False
        result = job.result()
        if result.exit_code != 0:
            what = f"host '{state.name}'" if state.role == "host" else f"helper '{state.name}'"
            raise EngineError(f"{what} did not become ready within {self.seconds:.0f}s "
                              f"(its probe: {' '.join(probe[1:])})")
        return True

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
