"""A report a student can read, as one self-contained HTML page (no script, no outside
file): the score, then each check with its result, why it failed, its hint, and what the
server saw. Every text is escaped, its controls written out (labctl.text.html)."""

from __future__ import annotations

from ...checks.result import CheckResult, points, score, server_saw, summary, total
from ...text import html
from . import ResultFormat

STYLE = """body{font-family:sans-serif;max-width:60em;margin:2em auto;color:#222}
table{border-collapse:collapse;width:100%}td,th{border:1px solid #ccc;padding:.3em .5em;text-align:left;vertical-align:top}
.pass{color:#1a7f37}.fail{color:#cf222e;font-weight:bold}.hint{color:#6a4c00}"""


def render(results: list[CheckResult], seconds: float, suite: str, note: str = "") -> str:
    """`note`: a paragraph under the title (why the lab never ran, what a copy left out)."""
    rows = []
    for result in results:
        status = '<span class="pass">pass</span>' if result.passed else '<span class="fail">FAIL</span>'
        why = html(result.reason)
        if result.hint and not result.passed:
            why += f'<div class="hint">hint: {html(result.hint)}</div>'
        saw = "<br>".join(html(line) for line in server_saw(result))
        rows.append(f"<tr><td>{html(result.name)}</td><td>{html(result.route)} {html(result.protocol)}</td>"
                    f"<td>{status}</td><td>{points(result.scored)}/{points(result.points)}</td>"
                    f"<td>{why}</td><td>{saw}</td></tr>")
    title = f"{html(suite)}: {points(score(results))} of {points(total(results))} points"
    noted = f'<p class="note">{html(note, keep=chr(10))}</p>' if note else ""
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
            f"<style>{STYLE}</style></head><body><h1>{title}</h1><p>{html(summary(results, seconds))}</p>{noted}"
            "<table><thead><tr><th>check</th><th>client → server</th><th>result</th><th>points</th>"
            "<th>why, and a hint</th><th>the server saw</th></tr></thead><tbody>"
            + "".join(rows) + "</tbody></table></body></html>\n")


FORMAT = ResultFormat("html", "an HTML report (check --report FILE.html)", render, ("html", "htm"))
