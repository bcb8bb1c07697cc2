"""Run a lab's checks and judge them, from both sides of each exchange.

Exchange checks are grouped by the host they run from: each group is one batch for
services/probe.py, one round trip to the engine, and groups run concurrently. The probe
reports what it observed, including the client port of every connection; the server's
transcript is then read once per server host, and each check's entries are found by that
port. `judge` compares both sides with what the check expects.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import time
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from ipaddress import IPv4Address
from typing import Any

from .addressing import address_for, source_address_toward
from .capture import Capture, wire_problems
from .checkspec import CheckSpec, Expectation
from .engine import Engine
from .errors import LabError
from .images import SERVICES_PATH
from .topology import Topology

MAX_PARALLEL = 8
TRANSCRIPT = "/var/log/labctl/transcript.jsonl"
RETRY_PAUSE = 0.25


@dataclass
class CheckResult:
    name: str
    source: str
    target: str | None
    port: int | None
    protocol: str
    passed: bool
    elapsed_ms: float
    reason: str = ""
    observed: dict[str, Any] = field(default_factory=dict)
    server: list[dict[str, Any]] = field(default_factory=list)
    attempts: int = 1

    @property
    def route(self) -> str:
        if self.protocol == "wire":
            return f"on {self.target}"
        return f"{self.source} → {self.target}:{self.port}" if self.target else f"{self.source} (run)"


# -- probe specs --------------------------------------------------------------------------

def target_address(topology: Topology, check: CheckSpec) -> IPv4Address | None:
    if check.target is None:
        return None
    return address_for(topology, topology.hosts[check.target], topology.hosts[check.source])


def probe_spec(topology: Topology, check: CheckSpec, index: int) -> dict[str, Any]:
    steps = []
    for position, step in enumerate(check.steps):
        if step.expect is not None:
            rule = step.expect.read_rule()
        elif check.protocol == "tcp" and position == len(check.steps) - 1 and step.send:
            rule = {"mode": "eof"}
        else:
            rule = {"mode": "none"}
        steps.append({"send": base64.b64encode(step.send).decode(), "read": rule})
    # A single TCP exchange half-closes and reads to the end, so surplus bytes are seen;
    # a check that expects an error reads until the verdict (an alert, a reset, or EOF).
    if check.expect_error and steps:
        steps[-1]["read"] = {"mode": "drain"}
    elif check.protocol == "tcp" and len(steps) == 1 and check.steps[0].send:
        steps[-1]["read"] = {"mode": "eof"}
    spec: dict[str, Any] = {
        "id": index, "protocol": check.protocol, "address": str(target_address(topology, check)),
        "port": check.port, "timeout": check.timeout, "steps": steps,
        "tls": {"ca": check.tls.ca, "server_name": check.tls.server_name or check.target,
                "client_cert": check.tls.client_cert},
    }
    if check.protocol == "udp":
        spec["udp_count"] = check.udp_count
    if check.http is not None:
        spec["http"] = {"method": check.http.method, "path": check.http.path,
                        "headers": check.http.headers, "https": check.http.https}
    if check.load is not None:
        spec["load"] = {"clients": check.load.clients, "requests": check.load.requests,
                        "duration": check.load.duration}
    return spec


# -- judging ------------------------------------------------------------------------------

def _decode(value: str | None) -> bytes:
    return base64.b64decode(value or "")


def judge(check: CheckSpec, observation: dict[str, Any]) -> tuple[bool, str]:
    """(passed, reason) for the client's side of one check."""
    problems = client_problems(check, observation)
    return (not problems), "; ".join(problems)


def client_problems(check: CheckSpec, observation: dict[str, Any]) -> list[str]:
    if check.run is not None:
        return _run_problems(check, observation)
    if check.load is not None:
        return _load_problems(check, observation)
    error, detail = observation.get("error"), observation.get("detail", "")
    if check.expect_error:
        if error == check.expect_error:
            if check.error_reason and (mismatch := check.error_reason.mismatch(detail)):
                return [f"{error}, but the reason {mismatch}"]
            return []
        if error:
            return [f"expected {check.expect_error}, got {error}: {detail}"]
        return [f"expected {check.expect_error}, but the exchange succeeded"]
    if error:
        return [f"{error}: {detail}"]
    problems: list[str] = []
    replies = observation.get("replies", [])
    local = observation.get("local") or []
    for position, step in enumerate(check.steps):
        if step.expect is None:
            continue
        reply = _decode(replies[position]) if position < len(replies) else b""
        # {client} is the address the client really used, as its own socket reports it
        expectation = _with_client(step.expect, local[0][0]) if local else step.expect
        mismatch = expectation.mismatch(reply)
        if mismatch:
            prefix = f"step {position + 1}: " if len(check.steps) > 1 else ""
            if check.protocol == "http":
                prefix = "body "
            problems.append(prefix + mismatch)
    if check.http is not None:
        problems = _http_problems(check, observation) + problems
    if "tls" in observation:
        problems += _tls_problems(check, observation["tls"])
    if check.protocol == "udp":
        udp = observation.get("udp", {})
        share = udp.get("received", 0) / max(1, udp.get("sent", 1))
        if share < check.udp_min_share:
            problems.append(f"{udp.get('received')}/{udp.get('sent')} datagrams came back "
                            f"({share:.0%}), below {check.udp_min_share:.0%}")
        if share > check.udp_max_share:
            problems.append(f"{udp.get('received')}/{udp.get('sent')} datagrams came back "
                            f"({share:.0%}), above the {check.udp_max_share:.0%} bound")
    if check.latency_ms is not None and observation.get("elapsed_ms", 0) > check.latency_ms:
        problems.append(f"took {observation['elapsed_ms']:.1f}ms, over the {check.latency_ms:.0f}ms bound")
    return problems


def _http_problems(check: CheckSpec, observation: dict[str, Any]) -> list[str]:
    assert check.http is not None
    problems = []
    status = observation.get("status")
    if check.http.status is not None and status != check.http.status:
        problems.append(f"expected status {check.http.status}, got {status}")
    headers = observation.get("headers", {})
    for name, expectation in check.http.response_headers.items():
        if name not in headers:
            problems.append(f"no response header {name}")
        elif mismatch := expectation.mismatch(headers[name]):
            problems.append(f"header {name} {mismatch}")
    return problems


def _tls_problems(check: CheckSpec, facts: dict[str, Any]) -> list[str]:
    problems = []
    order = ["TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3"]
    version = facts.get("version")
    if check.tls.min_version and (version not in order or order.index(version) < order.index(check.tls.min_version)):
        problems.append(f"negotiated {version}, below {check.tls.min_version}")
    if check.tls.subject and (mismatch := check.tls.subject.mismatch(facts.get("subject", ""))):
        problems.append(f"certificate subject {mismatch}")
    missing = [name for name in check.tls.san if name not in facts.get("san", [])]
    if missing:
        problems.append(f"certificate SAN lacks {', '.join(missing)} (has {', '.join(facts.get('san', []))})")
    return problems


def _run_problems(check: CheckSpec, observation: dict[str, Any]) -> list[str]:
    assert check.run is not None
    if observation.get("error"):
        return [f"{observation['error']}: {observation.get('detail', '')}"]
    problems = []
    code = observation.get("exit_code")
    if code != check.run.exit_code:
        stderr = _decode(observation.get("stderr")).decode("utf-8", "replace").strip().splitlines()
        problems.append(f"exit code {code}, expected {check.run.exit_code}"
                        + (f" (stderr: {stderr[-1][:80]})" if stderr else ""))
    for stream, expectation in (("stdout", check.run.stdout), ("stderr", check.run.stderr)):
        if expectation and (mismatch := expectation.mismatch(_decode(observation.get(stream)))):
            problems.append(f"{stream} {mismatch}")
    return problems


def _load_problems(check: CheckSpec, observation: dict[str, Any]) -> list[str]:
    assert check.load is not None
    stats = observation.get("load") or {}
    problems = []
    requests = stats.get("requests", 0)
    if not requests:
        return ["no exchange completed"]
    error_rate = stats.get("errors", 0) / requests
    allowed = check.load.max_error_rate or 0.0
    if error_rate > allowed:
        problems.append(f"error rate {error_rate:.1%} over {allowed:.1%} ({stats.get('error_kinds')})")
    if check.load.min_throughput is not None and stats.get("throughput", 0) < check.load.min_throughput:
        problems.append(f"throughput {stats['throughput']}/s below {check.load.min_throughput:g}/s")
    if check.load.max_p99_ms is not None and stats.get("p99_ms", 0) > check.load.max_p99_ms:
        problems.append(f"p99 {stats['p99_ms']:.1f}ms over {check.load.max_p99_ms:.0f}ms")
    return problems


# -- the server's side --------------------------------------------------------------------

def wants_server_side(topology: Topology, check: CheckSpec) -> bool:
    if check.server.mode == "off" or check.target is None:
        return False
    if check.server.mode == "on":
        return True
    # auto: exchanges with built-in services that are meant to succeed
    target = topology.hosts[check.target]
    return (check.run is None and check.load is None and check.expect_error is None
            and check.port is not None and target.service_at(check.transport, check.port) is not None)


def expected_peer(topology: Topology, check: CheckSpec) -> tuple[str, IPv4Address]:
    peer = check.server.peer or check.source
    destination = target_address(topology, check)
    assert destination is not None
    return peer, source_address_toward(topology, topology.hosts[peer], destination)


def server_problems(topology: Topology, check: CheckSpec, observation: dict[str, Any],
                    entries: list[dict[str, Any]], log: str | None) -> tuple[list[str], list[dict[str, Any]]]:
    """Problems with what the server saw, and the transcript entries of this exchange.

    Built-in services keep a transcript: the exchange is found there by the client's port
    (or, for a user's client whose ports are unknown, by its address in the time window).
    A user's server is judged on its output instead (`server: {log: ...}`)."""
    side = check.server
    peer, address = expected_peer(topology, check)
    target = topology.hosts[check.target or ""]
    has_transcript = (check.port is not None and target.runs_lab_image
                      and target.service_at(check.transport, check.port) is not None)
    problems: list[str] = []
    mine: list[dict[str, Any]] = []
    if has_transcript:
        at_port = [e for e in entries if e.get("port") == check.port]
        if check.run is None:
            ports = {local[1] for local in observation.get("local", [])}
            mine = [e for e in at_port if e.get("peer_port") in ports]
        else:
            mine = [e for e in at_port if e.get("peer") == str(address)]
        problems += _transcript_problems(side, peer, address, at_port, mine)
    elif side.log is None:
        problems.append(f"'{target.name}' keeps no transcript on port {check.port}; "
                        "assert on its output with server: {log: ...}")
    if side.log is not None:
        expectation = _with_client(side.log, address)
        if log is None:
            problems.append("the server's output could not be read")
        elif mismatch := expectation.mismatch(log):
            problems.append(f"server output {mismatch}")
    return problems, mine


def _transcript_problems(side, peer: str, address: IPv4Address, at_port: list[dict[str, Any]],
                         mine: list[dict[str, Any]]) -> list[str]:
    if not mine:
        seen = sorted({str(e.get("peer")) for e in at_port})
        return [f"the server saw no such exchange from {peer} ({address})"
                + (f"; it saw {', '.join(seen)}" if seen else "")]
    problems = []
    strangers = sorted({str(e.get("peer")) for e in mine if e.get("peer") != str(address)})
    if strangers:
        problems.append(f"the server saw it from {', '.join(strangers)}, expected {peer} ({address})")
    if side.count is not None and len(mine) != side.count:
        problems.append(f"the server saw {len(mine)} exchanges, expected {side.count}")
    if side.received is not None and not any(_entry_received(e, side.received) for e in mine):
        problems.append(f"the server did not receive {side.received.describe()} "
                        f"(it got {mine[0].get('preview', '')!r})")
    return problems


def _entry_received(entry: dict[str, Any], expectation: Expectation) -> bool:
    if expectation.kind == "exact":
        return entry.get("sha256") == hashlib.sha256(expectation.value.encode()).hexdigest()
    if expectation.kind == "length":
        return entry.get("bytes_in") == expectation.value
    return expectation.mismatch(entry.get("preview", "")) is None


def _with_client(expectation: Expectation, address: IPv4Address | str) -> Expectation:
    if not isinstance(expectation.value, str):
        return expectation
    text = re.escape(str(address)) if expectation.kind == "regex" else str(address)
    return Expectation(expectation.kind, expectation.value.replace("{client}", text))


# -- running ------------------------------------------------------------------------------

def run_checks(topology: Topology, engine: Engine, checks: list[CheckSpec], image: str) -> list[CheckResult]:
    """Run `checks`; those with `within` are retried until they pass or their time runs out.
    Wire checks run after the others, one at a time, each around its own capture.
    Results come back in the order given."""
    exchanges = [check for check in checks if not check.wire]
    results = iter(_run_exchanges(topology, engine, exchanges, image) if exchanges else [])
    return [run_wire_check(topology, engine, check, image) if check.wire else next(results)
            for check in checks]


def run_wire_check(topology: Topology, engine: Engine, check: CheckSpec, image: str) -> CheckResult:
    started = time.monotonic()
    during = [known for known in topology.checks if known.name in check.wire.during]
    try:
        with Capture(topology, engine, image, check.wire.target, check.wire.filter) as capture:
            traffic = _run_exchanges(topology, engine, during, image) if during else []
    except LabError as exc:  # a host it listens at is stopped, or its machine does not answer
        return CheckResult(check.name, "", check.target, None, "wire", False,
                           (time.monotonic() - started) * 1000, f"cannot capture: {exc}")
    packets = capture.packets
    problems = wire_problems(topology, check.wire, packets)
    failed = [f"{result.name} ({result.reason})" for result in traffic if not result.passed]
    if failed:
        problems.append("the traffic it watched failed: " + "; ".join(failed))
    return CheckResult(check.name, "", check.target, None, "wire", not problems,
                       (time.monotonic() - started) * 1000, "; ".join(problems),
                       observed={"packets": len(packets)})


def _run_exchanges(topology: Topology, engine: Engine, checks: list[CheckSpec], image: str) -> list[CheckResult]:
    started = time.monotonic()
    results = _attempt(topology, engine, checks, image)
    attempts = [1] * len(checks)
    while True:
        retry = [i for i, (check, result) in enumerate(zip(checks, results))
                 if not result.passed and check.within is not None
                 and time.monotonic() - started + RETRY_PAUSE < check.within]
        if not retry:
            break
        time.sleep(RETRY_PAUSE)  # a convergence poll: the next attempt is the signal
        again = _attempt(topology, engine, [checks[i] for i in retry], image)
        for i, result in zip(retry, again):
            attempts[i] += 1
            results[i] = result
    for result, count in zip(results, attempts):
        result.attempts = count
        if not result.passed and count > 1:
            result.reason += f" (after {count} attempts)"
    return results


def _attempt(topology: Topology, engine: Engine, checks: list[CheckSpec], image: str) -> list[CheckResult]:
    # Containers on one engine read the host's own clock, so the window needs no slack
    # beyond rounding; a wider one would credit a run check with an earlier exchange.
    window_start = time.time() - 0.01
    observations: dict[int, dict[str, Any]] = {}
    batches: dict[str, list[int]] = {}
    runs: list[int] = []
    # A host whose machine does not answer has no known address: say so, do not probe.
    unreachable = engine.unreachable_hosts(topology)
    for index, check in enumerate(checks):
        away = next((host for host in (check.source, check.target) if host in unreachable), None)
        if away:
            observations[index] = {"error": "error", "detail": f"'{away}' is unreachable: {unreachable[away]}"}
            continue
        (runs if check.run else batches.setdefault(check.source, [])).append(index)

    def run_batch(source: str) -> None:
        specs = [probe_spec(topology, checks[index], index) for index in batches[source]]
        try:
            observations.update(_probe(topology, engine, source, specs, image))
        except LabError as exc:  # the client host is stopped, paused or gone
            observations.update({index: _unreachable(source, exc) for index in batches[source]})

    def run_command(index: int) -> None:
        try:
            observations[index] = _run_command(topology, engine, checks[index])
        except LabError as exc:
            observations[index] = _unreachable(checks[index].source, exc)

    with ThreadPoolExecutor(max_workers=MAX_PARALLEL) as pool:
        futures = [pool.submit(run_batch, source) for source in batches]
        futures += [pool.submit(run_command, index) for index in runs]
        for future in futures:
            future.result()

    missing = {"error": "error", "detail": "the probe returned no result"}
    client_side = [client_problems(check, observations.get(index) or missing)
                   for index, check in enumerate(checks)]
    # The server's side is read only where the client's side holds.
    server_side = [i for i, check in enumerate(checks)
                   if wants_server_side(topology, check) and not client_side[i]]
    transcripts, unreadable = _transcripts(topology, engine, {checks[i].target for i in server_side
                                                              if checks[i].target}, window_start)
    logs = _logs(topology, engine, {checks[i].target for i in server_side
                                    if checks[i].server.log is not None}, window_start)
    results = []
    for index, check in enumerate(checks):
        observation = observations.get(index) or missing
        problems = client_side[index]
        entries: list[dict[str, Any]] = []
        if index in server_side and check.target in unreadable:
            problems = [f"cannot read the server's side: {unreadable[check.target]}"]
        elif index in server_side:
            server, entries = server_problems(topology, check, observation,
                                              transcripts.get(check.target or "", []),
                                              logs.get(check.target or ""))
            problems += server
        results.append(CheckResult(check.name, check.source, check.target, check.port, check.protocol,
                                   not problems, float(observation.get("elapsed_ms", 0.0)),
                                   "; ".join(problems), observation, entries))
    return results


def _probe(topology: Topology, engine: Engine, source: str, specs: list[dict[str, Any]],
           image: str) -> dict[int, dict[str, Any]]:
    payload = base64.b64encode(json.dumps(specs).encode()).decode()
    argv = ["python3", "-I", "-S", f"{SERVICES_PATH}/probe.py", payload]
    if topology.hosts[source].runs_lab_image:
        result = engine.exec(topology, source, argv)
    else:
        # The host runs the user's image, which may lack Python: probe from a helper that
        # shares the host's network namespace, so the exchange still leaves from that host.
        result = engine.run_in_namespace(topology, source, image, argv)
    if result.exit_code != 0:
        raise LabError(f"the probe on '{source}' failed: {result.last_line}")
    try:
        observations = json.loads(result.stdout)
    except json.JSONDecodeError:
        raise LabError(f"the probe on '{source}' printed no result") from None
    return {observation["id"]: observation for observation in observations}


def _run_command(topology: Topology, engine: Engine, check: CheckSpec) -> dict[str, Any]:
    assert check.run is not None
    argv = check.run.command
    if topology.hosts[check.source].runs_lab_image:
        argv = ["timeout", f"{check.timeout:g}", *argv]
    started = time.monotonic()
    result = engine.exec(topology, check.source, argv)
    observation: dict[str, Any] = {
        "error": None, "detail": "", "exit_code": result.exit_code,
        "stdout": base64.b64encode(result.stdout).decode(),
        "stderr": base64.b64encode(result.stderr).decode(),
        "elapsed_ms": round((time.monotonic() - started) * 1000, 3),
    }
    if result.exit_code == 124 and check.run.exit_code != 124:
        observation["error"], observation["detail"] = "timeout", f"the command ran over {check.timeout:g}s"
    return observation


def read_transcript(topology: Topology, engine: Engine, host: str,
                    since: float | None = None) -> list[dict[str, Any]]:
    """The host's transcript entries, or those from `since` on. The filter runs in the host
    (awk on the leading time field) so a long-lived lab's transcript is not shipped whole."""
    argv = ["cat", TRANSCRIPT] if since is None else \
        ["awk", "-F", "[:,]", f"$2 >= {since:.6f}", TRANSCRIPT]
    result = engine.exec(topology, host, argv)
    if result.exit_code != 0:
        return []
    entries = []
    for line in result.stdout.decode("utf-8", "replace").splitlines():
        try:
            entries.append(json.loads(line))
        except ValueError:
            continue
    return entries


def _transcripts(topology: Topology, engine: Engine, hosts: set[str],
                 since: float) -> tuple[dict[str, list[dict[str, Any]]], dict[str, str]]:
    """Each host's transcript from `since` on, and why any host's could not be read."""
    def fetch(host: str) -> tuple[str, list[dict[str, Any]] | str]:
        if not topology.hosts[host].runs_lab_image:
            return host, []
        try:
            return host, read_transcript(topology, engine, host, since)
        except LabError as exc:
            return host, str(exc)
    with ThreadPoolExecutor(max_workers=MAX_PARALLEL) as pool:
        fetched = dict(pool.map(fetch, sorted(hosts)))
    return ({host: value for host, value in fetched.items() if not isinstance(value, str)},
            {host: value for host, value in fetched.items() if isinstance(value, str)})


def _logs(topology: Topology, engine: Engine, hosts: set[str], since: float) -> dict[str, str | None]:
    def read(host: str) -> str | None:
        try:
            return b"".join(engine.logs(topology, host, since=since)).decode("utf-8", "replace")
        except LabError:
            return None
    return {host: read(host) for host in hosts}


def _unreachable(host: str, exc: LabError) -> dict[str, Any]:
    return {"error": "error", "detail": f"cannot run on '{host}': {exc}"}


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


def to_junit(results: list[CheckResult], seconds: float, suite: str) -> str:
    """JUnit XML, as CI systems read it: one testcase per check."""
    root = ET.Element("testsuites")
    node = ET.SubElement(root, "testsuite", name=suite, tests=str(len(results)),
                         failures=str(sum(not r.passed for r in results)), errors="0",
                         time=f"{seconds:.3f}")
    for result in results:
        case = ET.SubElement(node, "testcase", classname=suite, name=result.name,
                             time=f"{result.elapsed_ms / 1000:.3f}")
        if not result.passed:
            failure = ET.SubElement(case, "failure", message=result.reason, type="CheckFailed")
            failure.text = f"{result.route} {result.protocol}: {result.reason}"
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def timed_run(topology: Topology, engine: Engine, checks: list[CheckSpec], image: str) -> tuple[list[CheckResult], float]:
    started = time.monotonic()
    results = run_checks(topology, engine, checks, image)
    return results, time.monotonic() - started
