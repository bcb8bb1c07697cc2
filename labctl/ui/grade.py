"""The class dashboard (GET /api/grade): a row per submission, built from the `grade` events
of the lab being graded, so `labctl ui` beside a `labctl grade` of its lab shows the run as
well as `labctl grade --ui` does. Served by `grade --ui`, the dashboard also links each
student's report and grades one student again on request."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..ops.events import Event
from .replies import Refused, missing

STATES = ("queued", "coming up", "checking", "graded")


@dataclass
class Grading:
    """What `labctl grade --ui` lends the dashboard: grade one student again (blocking: it
    brings an instance up, checks it, takes it down and rewrites the outputs), and the
    student's report as the run last wrote it."""
    regrade: Callable[[str], None]
    report: Callable[[str], Path | None]


@dataclass
class Row:
    student: str
    number: int = 0
    state: str = "queued"
    score: float | None = None
    points: float | None = None
    failed: list[str] = field(default_factory=list)
    error: str = ""
    instance: str | None = None


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


class Board:
    """The rows as the events left them. Fed from the server's one watching subscription
    (a thread), read by requests: all under one lock."""

    def __init__(self, lab: str, grading: Grading | None = None):
        self.lab, self.grading = lab, grading
        self.rows: dict[str, Row] = {}
        self.active = False
        self.regrading: str | None = None
        self._lock = threading.Lock()

    def take(self, event: Event) -> None:
        """Fold one event in; any but a grade event is not the board's."""
        if event.kind != "grade":
            return
        detail = event.detail
        with self._lock:
            if event.action == "started":
                self.active = True
                return
            if event.action == "finished":
                self.active = False
                return
            row = self.rows.setdefault(event.subject, Row(event.subject))
            number = detail.get("number")
            if isinstance(number, int) and not isinstance(number, bool):
                row.number = number
            row.state = event.action
            instance = detail.get("instance")
            row.instance = instance if isinstance(instance, str) and event.action in ("coming up", "checking") else None
            if event.action == "queued":
                row.score = row.points = None
                row.failed, row.error = [], ""
            elif event.action == "graded":
                row.score, row.points = _number(detail.get("score")), _number(detail.get("points"))
                failed = detail.get("failed")
                row.failed = [name for name in failed if isinstance(name, str)] if isinstance(failed, list) else []
                error = detail.get("error")
                row.error = error if isinstance(error, str) else ""

    def instances(self) -> set[str]:
        """The lab instances running for the class now, as the events named them."""
        with self._lock:
            return {row.instance for row in self.rows.values() if row.instance}

    def as_json(self) -> dict[str, Any]:
        with self._lock:
            rows = sorted(self.rows.values(), key=lambda row: (row.number or 1 << 30, row.student))
            active = self.active or self.regrading is not None
            shown: list[dict[str, Any]] = [{"student": row.student, "number": row.number, "state": row.state, "score": row.score,
                      "points": row.points, "failed": list(row.failed), "error": row.error,
                      "instance": row.instance, "report": None} for row in rows]
        if self.grading is not None:
            for item in shown:
                if item["state"] == "graded" and item["number"] and self.grading.report(item["student"]) is not None:
                    item["report"] = f"grade/report/{item['number']}"
        return {"active": active, "lab": self.lab, "rows": shown}

    def report(self, number: int) -> Path:
        """The report of the submission numbered `number`, as the run wrote it."""
        with self._lock:
            student = next((row.student for row in self.rows.values() if row.number == number), None)
        found = self.grading.report(student) if self.grading is not None and student is not None else None
        if found is None:
            raise missing(f"no report for submission {number} (reports are written when the run ends)")
        return found

    def regrade(self, student: str) -> None:
        """Grade `student` again in a thread of its own; refused while any grading runs."""
        if self.grading is None:
            raise Refused(409, "only labctl grade --ui grades again from the page")
        with self._lock:
            if student not in self.rows:
                raise missing(f"no submission named {student!r} on the dashboard")
            if self.active or self.regrading is not None:
                raise Refused(409, "the class is being graded; grade one again once that ends")
            self.regrading = student
        grading = self.grading

        def run() -> None:
            try:
                grading.regrade(student)
            except Exception as exc:   # the run's own failures are in its events; this one is not
                with self._lock:
                    self.rows[student].error = f"not graded again: {exc}"
            finally:
                with self._lock:
                    self.regrading = None
        threading.Thread(target=run, name="labctl-regrade", daemon=True).start()
