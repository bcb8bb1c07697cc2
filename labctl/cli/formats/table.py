"""The check table and its summary line, as `labctl check` prints them by default."""

from __future__ import annotations

from ...checks.result import CheckResult, reason_with_hint, summary
from ..views import columns
from . import ResultFormat


def render(results: list[CheckResult], seconds: float, suite: str) -> str:
    rows = [("CHECK", "CLIENT → SERVER", "PROTO", "RESULT", "TIME", "REASON")]
    rows += [(result.name, result.route, result.protocol, "pass" if result.passed else "FAIL",
              f"{result.elapsed_ms:.0f}ms", reason_with_hint(result)) for result in results]
    return columns(rows) + "\n" + summary(results, seconds)


FORMAT = ResultFormat("table", "a table and a summary line", render)
