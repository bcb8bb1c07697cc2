"""A check's outcome, as operations produce it and views print it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class CheckResult:
    """One check's outcome: which exchange, whether it passed, and the evidence.

    Attributes:
        name: the check's name in the lab file.
        source: the host the client side ran on ("" for a wire check, which has no client).
        target: the server host, the network or host a wire check watched, or None for a
            check that runs a program on its source only.
        port: the server's port, or None where the kind has none (ping, run).
        protocol: the check's kind (tcp, udp, tls, http, dns, ping, raw, wire, run, reach).
        passed: whether every expectation held, from both sides where the kind has two.
        elapsed_ms: how long the last attempt took, in milliseconds.
        reason: why it failed ("" when it passed), one line.
        observed: what the client side saw: the answer, the status, the certificate...
        server: the built-in server's transcript of the exchanges it had with the client.
        attempts: how many tries it took (a check with `within:` tries until it passes or time is up).
        hint: the check's own hint from the lab file, for whoever reads a failure.
        points: what passing is worth in a grade.
    """
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
    hint: str | None = None
    points: float = 1.0

    @property
    def scored(self) -> float:
        """The points it earned: all of them if it passed, else none."""
        return self.points if self.passed else 0.0

    @property
    def route(self) -> str:
        """Who spoke to whom, for a line of output: `alice → bob:7`, `on lan`, `alice (run)`."""
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
