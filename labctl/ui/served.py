"""The lab a server serves: the lab as read, its engine, the grade instances it may show,
and what one watching subscription keeps for every page (each check's last result, the
class dashboard's rows).

The watching subscription reads labctl's own events only (no engine stream): a thread that
waits on a socket, so an idle lab costs nothing more with a server beside it."""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from typing import Any, Callable

from ..engines.base import Engine
from ..errors import LabError
from ..labfile.load import Lab
from ..model.addressing import relocate
from ..ops.events import Event, Subscription, subscribe
from .grade import Board, Grading
from .replies import Refused, missing
from .snapshot import last_from_event

# labctl grade names the instance in slot K (from 1) `<lab>-grade<K>` (labctl.ops.grade).
INSTANCE = re.compile(r"-grade([1-9][0-9]{0,3})")


@dataclass
class Served:
    lab: Lab
    engine: Engine
    read: Callable[[], Lab]                   # the lab file read anew
    open_engine: Callable[[Lab], Engine]
    grading: Grading | None = None            # lent by `labctl grade --ui`
    say: Callable[[str], None] = lambda message: None   # what operations say as they go
    board: Board = field(init=False)
    last: dict[str, dict[str, Any]] = field(default_factory=dict)   # check name -> its last result
    _instances: dict[str, tuple[Lab, Engine]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _watching: Subscription | None = None

    def __post_init__(self) -> None:
        self.board = Board(self.lab.topology.name, self.grading)

    @property
    def name(self) -> str:
        return self.lab.topology.name

    def watch(self) -> None:
        """Start the watching subscription (once)."""
        if self._watching is None:
            self._watching = subscribe(self.lab.topology, self.engine, engine_events=False)
            threading.Thread(target=self._follow, args=(self._watching,), name="labctl-ui-watch", daemon=True).start()

    def _follow(self, subscription: Subscription) -> None:
        for event in subscription:
            self.take(event)

    def take(self, event: Event) -> None:
        if event.kind == "check" and event.action in ("passed", "failed"):
            with self._lock:
                self.last[event.subject] = last_from_event(event.detail, event.action == "passed", event.time)
        self.board.take(event)

    def close(self) -> None:
        if self._watching is not None:
            self._watching.close()

    def last_results(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            return dict(self.last)

    def view(self, name: str | None) -> tuple[Lab, Engine]:
        """The lab a request names with `?lab=`: this one (no name, or its own), or a grade
        instance of it that the dashboard says is running now."""
        if not name or name == self.name:
            return self.lab, self.engine
        slot = INSTANCE.fullmatch(name[len(self.name):]) if name.startswith(self.name) else None
        if slot is None or name not in self.board.instances():
            raise missing(f"no lab {name!r} here: this server shows {self.name!r} and the instances "
                          "its class dashboard shows running")
        with self._lock:
            found = self._instances.get(name)
        if found is None:
            lab = self.read()
            try:
                relocate(lab.topology, int(slot.group(1)))
            except LabError as exc:
                raise Refused(409, str(exc)) from None
            lab.topology.name = name
            found = (lab, self.open_engine(lab))
            with self._lock:
                self._instances[name] = found
        return found
