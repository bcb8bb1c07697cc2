"""A report a student can read, in Markdown: the score, then each check with its result,
why it failed, its hint, and what the server saw."""

from __future__ import annotations

from ...checks.result import CheckResult, points, score, server_saw, summary, total
from . import ResultFormat


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render(results: list[CheckResult], seconds: float, suite: str) -> str:
    lines = [f"# {suite}: {points(score(results))} of {points(total(results))} points", "",
             summary(results, seconds), ""]
    for result in results:
        mark = "pass" if result.passed else "FAIL"
        lines.append(f"## {mark}: {_cell(result.name)} ({points(result.scored)}/{points(result.points)})")
        lines += ["", f"- {_cell(result.route)}, {result.protocol}"]
        if result.reason:
            lines.append(f"- why: {_cell(result.reason)}")
        if result.hint and not result.passed:
            lines.append(f"- hint: {_cell(result.hint)}")
        saw = server_saw(result)
        if saw:
            lines.append("- the server saw: " + "; ".join(_cell(line) for line in saw))
        lines.append("")
    return "\n".join(lines)


FORMAT = ResultFormat("markdown", "a Markdown report (check --report FILE.md)", render, ("md", "markdown"))
