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

    @property
    def route(self) -> str:
        if not self.source:   # a wire check watches a network or host; it has no client
            return f"on {self.target}"
        if not self.target:
            return f"{self.source} (run)"
        return f"{self.source} → {self.target}" + (f":{self.port}" if self.port is not None else "")


def summary(results: list[CheckResult], seconds: float) -> str:
    passed = sum(result.passed for result in results)
    return f"{passed} passed, {len(results) - passed} failed in {seconds:.2f}s"
