"""The captures started from the page, by id: running ones until stopped, then their pcap
until the server ends (the newest few, so memory stays bounded). Each is the same
labctl.ops.capture.Capture `labctl capture` runs, with its helper's own deadline, so one
left running when the server is killed still ends."""

from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass
from typing import Any

from ..assets import host_tag
from ..engines.base import Engine
from ..model.topology import Topology
from ..ops.capture import LONGEST, Capture
from .replies import Refused, missing

MOST_RUNNING = 8      # captures running at once from one server
KEPT = 8              # stopped captures whose pcap stays to be downloaded


@dataclass
class Taken:
    id: str
    target: str
    filter: str
    capture: Capture
    running: bool = True
    packets: int = 0

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "target": self.target, "filter": self.filter, "running": self.running,
                "packets": self.packets, "bytes": len(self.capture.data),
                "download": None if self.running else f"api/captures/{self.id}.pcap"}


class Captures:
    def __init__(self) -> None:
        self._taken: dict[str, Taken] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def start(self, topology: Topology, engine: Engine, target: str, expression: str) -> Taken:
        """Start a capture (blocking: its helpers start and say they listen)."""
        with self._lock:
            if sum(taken.running for taken in self._taken.values()) >= MOST_RUNNING:
                raise Refused(409, f"{MOST_RUNNING} captures are running; stop one first")
            taken = Taken(str(next(self._ids)), target, expression,
                          Capture(topology, engine, host_tag(), target, expression or None, deadline=LONGEST))
            self._taken[taken.id] = taken
        try:
            taken.capture.start()
        except BaseException:
            with self._lock:
                self._taken.pop(taken.id, None)
            raise
        return taken

    def running(self, id: str) -> Taken:
        with self._lock:
            taken = self._taken.get(id)
        if taken is None or not taken.running:
            raise missing(f"no running capture {id!r}")
        return taken

    def stop(self, id: str) -> Taken:
        """Stop a running capture (blocking: its helpers stop and hand over their files)."""
        taken = self.running(id)
        with self._lock:
            if not taken.running:
                raise missing(f"no running capture {id!r}")
            taken.running = False
        taken.capture.stop()
        taken.packets = len(taken.capture.packets)
        with self._lock:
            stopped = [key for key, each in self._taken.items() if not each.running]
            for key in stopped[:-KEPT]:
                del self._taken[key]
        return taken

    def pcap(self, id: str) -> Taken:
        with self._lock:
            taken = self._taken.get(id)
        if taken is None or taken.running:
            raise missing(f"no stopped capture {id!r} to download")
        return taken

    def listed(self) -> list[dict[str, Any]]:
        with self._lock:
            return [taken.as_json() for taken in self._taken.values()]

    def stop_all(self) -> None:
        """Stop whatever still runs (the server is ending)."""
        with self._lock:
            running = [taken for taken in self._taken.values() if taken.running]
            for taken in running:
                taken.running = False
        for taken in running:
            try:
                taken.capture.stop()
            except Exception:
                pass   # its helper's own deadline ends it
