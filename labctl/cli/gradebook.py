"""What `labctl grade` writes: a CSV row per student, and an HTML summary (score, failed
checks with their reasons, time taken), plus the table it prints."""

from __future__ import annotations

import csv
import io
from html import escape

from ..ops.grade import Graded
from .views import columns

FIELDS = ["student", "score", "points", "passed", "failed", "seconds", "failed checks", "machines"]


def _row(graded: Graded) -> list[str]:
    return [graded.student, f"{graded.score:g}", f"{graded.points:g}", str(graded.passed), str(graded.failed),
            f"{graded.seconds:.1f}", graded.summary, " ".join(graded.machines)]


def csv_text(rows: list[Graded]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(FIELDS)
    writer.writerows(_row(graded) for graded in rows)
    return out.getvalue()


def table(rows: list[Graded]) -> str:
    return columns([("STUDENT", "SCORE", "TIME", "FAILED")] + [
        (g.student, f"{g.score:g}/{g.points:g}", f"{g.seconds:.0f}s", g.summary[:100]) for g in rows])


def html_page(rows: list[Graded], lab: str) -> str:
    body = "".join(
        f"<tr><td>{escape(g.student)}</td><td>{g.score:g}/{g.points:g}</td><td>{g.seconds:.1f}s</td><td>"
        + ("<br>".join(f"<b>{escape(name)}</b>: {escape(reason)}" for name, reason in g.failures)
           or escape(g.error) or "all passed") + "</td></tr>" for g in rows)
    mean = sum(g.score for g in rows) / len(rows) if rows else 0
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{escape(lab)}: grades</title>'
            "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
            "td,th{border:1px solid #ccc;padding:.3em .5em;text-align:left;vertical-align:top}</style></head>"
            f"<body><h1>{escape(lab)}: {len(rows)} submissions, mean score {mean:.1f}</h1><table><thead><tr>"
            "<th>student</th><th>score</th><th>time</th><th>failed checks, and why</th></tr></thead>"
            f"<tbody>{body}</tbody></table></body></html>\n")
