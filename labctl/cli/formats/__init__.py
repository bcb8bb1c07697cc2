"""Output formats for check results (table, json, junit): each is one module here that
declares a `FORMAT`, found by looking. `labctl check --format NAME` and the pytest plugin
print through them."""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass
from functools import cache
from typing import Callable

from ...checks.result import CheckResult


@dataclass(frozen=True)
class ResultFormat:
    name: str
    summary: str
    # results, seconds, the suite's name (the lab's) -> the text to print or write
    render: Callable[[list[CheckResult], float, str], str]


@cache
def result_formats() -> dict[str, ResultFormat]:
    found = []
    for module in pkgutil.iter_modules(__path__):
        declared = getattr(importlib.import_module(f"{__name__}.{module.name}"), "FORMAT", None)
        if isinstance(declared, ResultFormat):
            found.append(declared)
    return {item.name: item for item in sorted(found, key=lambda item: item.name)}
