"""A check's outcome, as operations produce it and views print it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class CheckResult:
    name: str
    source: str
    target: str | None
    port: int | None
    protocol: str
    passed: bool
    elapsed_ms: float
    reason: str = ""
    observed: dict[str, Any] = field(default_factory=dict)
    server: list[dict[str, Any]] = field(default_factory=list)
    attempts: int = 1
    hint: str | None = None       # the check's own, for whoever reads a failure
    points: float = 1.0           # what passing is worth

    @property
    def scored(self) -> float:
        return self.points if self.passed else 0.0

    @property
    def route(self) -> str:
        if not self.source:   # a wire check watches a network or host; it has no client
            return f"on {self.target}"
        if not self.target:
            return f"{self.source} (run)"
        return f"{self.source} → {self.target}" + (f":{self.port}" if self.port is not None else "")


def summary(results: list[CheckResult], seconds: float) -> str:
    passed = sum(result.passed for result in results)
    line = f"{passed} passed, {len(results) - passed} failed in {seconds:.2f}s"
    return line + (f"; score {points(score(results))}/{points(total(results))}" if results else "")


def reason_with_hint(result: CheckResult) -> str:
    """Why it failed, and the check's hint, which is meant for exactly that moment."""
    if result.passed or not result.hint:
        return result.reason
    return f"{result.reason} (hint: {result.hint})" if result.reason else f"hint: {result.hint}"


def server_saw(result: CheckResult, most: int = 5) -> list[str]:
    """What the server's transcript shows of this check's exchanges, a line each."""
    lines = []
    for entry in result.server[:most]:
        what = f"from {entry.get('peer')}:{entry.get('peer_port')}"
        if "bytes_in" in entry:
            what += f", {entry['bytes_in']} bytes in, {entry.get('bytes_out', 0)} out"
        if entry.get("preview"):
            what += f": {entry['preview'][:60]!r}"
        lines.append(what)
    if len(result.server) > most:
        lines.append(f"and {len(result.server) - most} more")
    return lines


def score(results: list[CheckResult]) -> float:
    return sum(result.scored for result in results)


def total(results: list[CheckResult]) -> float:
    return sum(result.points for result in results)


def points(value: float) -> str:
    return f"{value:g}"
