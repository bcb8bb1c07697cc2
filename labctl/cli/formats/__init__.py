"""Output formats for check results (table, json, junit): each is one module here that
declares a `FORMAT`, found by looking. `labctl check --format NAME` and the pytest plugin
print through them."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Callable

from ...checks.result import CheckResult
from ...registry import declared


@dataclass(frozen=True)
class ResultFormat:
    name: str
    summary: str
    # results, seconds, the suite's name (the lab's) -> the text to print or write
    render: Callable[[list[CheckResult], float, str], str]
    suffixes: tuple[str, ...] = ()   # the report files `check --report FILE` writes in it


def format_for_file(name: str) -> ResultFormat | None:
    """The format a report file's suffix asks for (report.html, report.md), or None."""
    suffix = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    return next((item for item in result_formats().values() if suffix in item.suffixes), None)


@cache
def result_formats() -> dict[str, ResultFormat]:
    return {item.name: item for item in declared(__name__, __path__, "FORMAT", ResultFormat)}
