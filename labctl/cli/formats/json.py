"""Check results as one JSON document: counts, seconds, and each check without the
probe's raw observation."""

from __future__ import annotations

import json
from dataclasses import asdict

from ...checks.result import CheckResult, score, total
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
    return json.dumps(payload, indent=2)


FORMAT = ResultFormat("json", "one JSON document", render)
