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


@cache
def result_formats() -> dict[str, ResultFormat]:
    return {item.name: item for item in declared(__name__, __path__, "FORMAT", ResultFormat)}
