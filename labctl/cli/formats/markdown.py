"""A report a student can read, in Markdown: the score, then each check with its result,
why it failed, its hint, and what the server saw. Every text is literal Markdown on one
line (labctl.text.markdown): a student's server cannot add a link, an image or HTML."""

from __future__ import annotations

from ...checks.result import CheckResult, points, score, server_saw, summary, total
from ...text import markdown
from . import ResultFormat


def render(results: list[CheckResult], seconds: float, suite: str, note: str = "") -> str:
    """`note`: a line under the title (why the lab never ran, what a copy left out)."""
    lines = [f"# {markdown(suite)}: {points(score(results))} of {points(total(results))} points", "",
             summary(results, seconds), ""]
    if note:
        lines += [markdown(note), ""]
    for result in results:
        mark = "pass" if result.passed else "FAIL"
        lines.append(f"## {mark}: {markdown(result.name)} ({points(result.scored)}/{points(result.points)})")
        lines += ["", f"- {markdown(result.route)}, {markdown(result.protocol)}"]
        if result.reason:
            lines.append(f"- why: {markdown(result.reason)}")
        if result.hint and not result.passed:
            lines.append(f"- hint: {markdown(result.hint)}")
        saw = server_saw(result)
        if saw:
            lines.append("- the server saw: " + "; ".join(markdown(line) for line in saw))
        lines.append("")
    return "\n".join(lines)


FORMAT = ResultFormat("markdown", "a Markdown report (check --report FILE.md)", render, ("md", "markdown"))
