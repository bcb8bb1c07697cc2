"""Check results as one JSON document: counts, seconds, and each check without the
probe's raw observation. Its strings hold no lone surrogate (an undecodable byte of a file
name is written out as \\xNN), so any JSON reader takes it and it encodes as UTF-8."""

from __future__ import annotations

import json
from dataclasses import asdict

from ...checks.result import CheckResult, score, total
from ...text import json_safe
from . import ResultFormat


def render(results: list[CheckResult], seconds: float, suite: str) -> str:
    payload = {
        "passed": sum(result.passed for result in results),
        "failed": sum(not result.passed for result in results),
        "seconds": round(seconds, 3),
        "score": score(results),
        "points": total(results),
        "checks": [{key: value for key, value in asdict(result).items() if key != "observed"}
                   for result in results],
    }
    return json.dumps(json_safe(payload), indent=2, default=str)


FORMAT = ResultFormat("json", "one JSON document", render)
