"""Run a lab's checks and judge them.

Checks are grouped by the host they run from: each group is one batch for services/probe.py,
one round trip to the engine, and groups run concurrently. The probe reports what it
observed; `judge` compares that with what the check expects.
"""

from __future__ import annotations

import base64
import json
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any

from .addressing import address_for
from .checkspec import CheckSpec
from .engine import Engine
from .errors import LabError
from .images import SERVICES_PATH
from .topology import Topology

MAX_PARALLEL_SOURCES = 8


@dataclass
class CheckResult:
    name: str
    source: str
    target: str
    port: int
    protocol: str
    passed: bool
    elapsed_ms: float
    reason: str = ""
    observed: dict[str, Any] = field(default_factory=dict)

    @property
    def route(self) -> str:
        return f"{self.source} → {self.target}:{self.port}"


def probe_spec(topology: Topology, check: CheckSpec, index: int) -> dict[str, Any]:
    source = topology.hosts[check.source]
    target = topology.hosts[check.target]
    spec: dict[str, Any] = {
        "id": index,
        "protocol": check.protocol,
        "address": str(address_for(topology, target, source)),
        "port": check.port,
        "timeout": check.timeout,
        "send": base64.b64encode(check.send.encode()).decode(),
        "server_name": check.server_name or check.target,
        "ca": check.ca,
    }
    if check.protocol == "tls" and check.expect is not None and check.expect.kind == "exact":
        spec["until_bytes"] = len(check.expect.value.encode())
    elif check.protocol == "tls" and check.send:
        # An echo-like server answers as much as it got; stop there rather than wait for EOF.
        spec["until_bytes"] = len(check.send.encode())
    if check.protocol == "http":
        spec.update(method=check.method, path=check.path, headers=check.headers, https=check.https)
    return spec


def judge(check: CheckSpec, observation: dict[str, Any]) -> tuple[bool, str]:
    """(passed, reason) for one check given what the probe observed."""
    error = observation.get("error")
    detail = observation.get("detail", "")
    if check.expect_error:
        if error == check.expect_error:
            return True, ""
        if error:
            return False, f"expected {check.expect_error}, got {error}: {detail}"
        return False, f"expected {check.expect_error}, but the exchange succeeded"
    if error:
        return False, f"{error}: {detail}"
    reply = base64.b64decode(observation.get("reply") or "").decode("utf-8", "replace")
    if check.protocol == "http":
        status = observation.get("status")
        if check.status is not None and status != check.status:
            return False, f"expected status {check.status}, got {status}"
        if check.body is not None:
            mismatch = check.body.mismatch(reply)
            if mismatch:
                return False, f"body {mismatch}"
        return True, ""
    if check.expect is not None:
        mismatch = check.expect.mismatch(reply)
        if mismatch:
            return False, mismatch
    return True, ""


def run_checks(topology: Topology, engine: Engine, checks: list[CheckSpec], image: str) -> list[CheckResult]:
    """Run `checks`, batched per source host; results come back in the order given."""
    batches: dict[str, list[tuple[int, CheckSpec]]] = {}
    for index, check in enumerate(checks):
        batches.setdefault(check.source, []).append((index, check))
    results: list[CheckResult | None] = [None] * len(checks)

    def run_batch(source: str) -> None:
        items = batches[source]
        specs = [probe_spec(topology, check, index) for index, check in items]
        observations = _probe(topology, engine, source, specs, image)
        for index, check in items:
            observation = observations.get(index)
            if observation is None:
                passed, reason, observation = False, "the probe returned no result", {}
            else:
                passed, reason = judge(check, observation)
            results[index] = CheckResult(check.name, check.source, check.target, check.port,
                                         check.protocol, passed,
                                         float(observation.get("elapsed_ms", 0.0)), reason, observation)

    with ThreadPoolExecutor(max_workers=min(MAX_PARALLEL_SOURCES, max(1, len(batches)))) as pool:
        for future in [pool.submit(run_batch, source) for source in batches]:
            future.result()
    return [result for result in results if result is not None]


def _probe(topology: Topology, engine: Engine, source: str, specs: list[dict[str, Any]],
           image: str) -> dict[int, dict[str, Any]]:
    payload = base64.b64encode(json.dumps(specs).encode()).decode()
    argv = ["python3", f"{SERVICES_PATH}/probe.py", payload]
    if topology.hosts[source].runs_lab_image:
        result = engine.exec(topology, source, argv)
    else:
        # The host runs the user's image, which may lack Python: probe from a helper that
        # shares the host's network namespace, so the exchange still leaves from that host.
        result = engine.run_in_namespace(topology, source, image, argv)
    if result.exit_code != 0:
        message = (result.stderr or result.stdout).decode("utf-8", "replace").strip().splitlines()
        raise LabError(f"the probe on '{source}' failed: {message[-1] if message else result.exit_code}")
    try:
        observations = json.loads(result.stdout)
    except json.JSONDecodeError:
        raise LabError(f"the probe on '{source}' printed no result") from None
    return {observation["id"]: observation for observation in observations}


# -- reports ------------------------------------------------------------------------------

def summary(results: list[CheckResult], seconds: float) -> str:
    passed = sum(result.passed for result in results)
    return f"{passed} passed, {len(results) - passed} failed in {seconds:.2f}s"


def table(results: list[CheckResult]) -> str:
    rows = [("CHECK", "CLIENT → SERVER", "PROTO", "RESULT", "TIME", "REASON")]
    for result in results:
        rows.append((result.name, result.route, result.protocol,
                     "pass" if result.passed else "FAIL", f"{result.elapsed_ms:.0f}ms", result.reason))
    widths = [max(len(row[column]) for row in rows) for column in range(5)]
    lines = []
    for row in rows:
        cells = [row[column].ljust(widths[column]) for column in range(5)]
        lines.append("  ".join(cells + [row[5]]).rstrip())
    return "\n".join(lines)


def to_json(results: list[CheckResult], seconds: float) -> str:
    payload = {
        "passed": sum(result.passed for result in results),
        "failed": sum(not result.passed for result in results),
        "seconds": round(seconds, 3),
        "checks": [{key: value for key, value in asdict(result).items() if key != "observed"}
                   for result in results],
    }
    return json.dumps(payload, indent=2)


def timed_run(topology: Topology, engine: Engine, checks: list[CheckSpec], image: str) -> tuple[list[CheckResult], float]:
    started = time.monotonic()
    results = run_checks(topology, engine, checks, image)
    return results, time.monotonic() - started
