"""Run a lab's checks and judge them, from both sides of each exchange.

Exchange checks are grouped by the host they run from: each group is one batch for
services/probe.py, and the engine runs every group at once (one helper for them all where
it can: labctl.engines.probing). The probe
reports what it observed, including the client port of every connection; the server's
transcript is then read once per server host (from its output, through the engine's log
API), and each check's entries are found by that port. labctl.checks judges both sides with what the check expects; each check's kind says
how it runs (`runner`): through the probe, as its own command, or around a capture.
"""

from __future__ import annotations

import base64
import json
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ..checks.evidence import runs_alone
from ..checks.judge import client_problems, family_of, server_problems, wants_server_side
from ..checks.probe import probe_spec
from ..checks.result import CheckResult
from ..checks.spec import CheckSpec
from ..engines.base import Engine, ExecResult, ProbeJob
from ..errors import LabError
from ..model.topology import Topology
from ..names import PKI_PATH, TRANSCRIPT_MARK
from ..render.pki import LabPki
from .capture import Capture
from .causes import explain
from .events import publish_all

MAX_PARALLEL = 16
PROBE_MOST = 300.0      # seconds one host's probe may take, at most
PROBE_SLACK = 10.0      # seconds past its checks' own bounds (a loaded machine starts it late)
LOG_SETTLE_READS = 3    # extra reads of the servers' output where a line may be late
LOG_SETTLE_PAUSE = 0.05
RETRY_PAUSE = 0.25
COMMAND_OUTPUT = 1 << 20   # bytes of each stream a run: check keeps; the rest is read and dropped
COMMAND_GRACE = 5.0        # seconds past its timeout before labctl stops waiting for a command


# -- running ------------------------------------------------------------------------------

def run_checks(topology: Topology, engine: Engine, checks: list[CheckSpec], image: str,
               deadline: float | None = None) -> list[CheckResult]:
    """Run `checks`; those with `within` are retried until they pass or their time runs out.
    Wire checks run after the others, one at a time, each around its own capture. Past
    `deadline` (time.monotonic()), a check not yet started fails unrun.
    Results come back in the order given."""
    checks = [check.kind.at_run(topology, check) for check in checks]
    publish_all(topology, engine, (("check", "running", check.name, {}) for check in checks))
    exchanges = [check for check in checks if check.kind.runner != "capture"]
    results = iter(in_turns(topology, engine, exchanges, image, deadline))
    ordered = [next(results) if check.kind.runner != "capture" else
               _too_late(check) if _past(deadline) else run_wire_check(topology, engine, check, image)
               for check in checks]
    explain(topology, engine, ordered)
    for check, result in zip(checks, ordered):
        result.hint, result.points = check.hint, check.points
    publish_all(topology, engine, (("check", "passed" if result.passed else "failed", result.name, _judged(result))
                                   for result in ordered))
    return ordered


def _judged(result: CheckResult) -> dict[str, Any]:
    """What a check's event says of its result."""
    return {"source": result.source, "target": result.target, "port": result.port, "protocol": result.protocol,
            "reason": result.reason, "elapsed_ms": round(result.elapsed_ms, 3), "attempts": result.attempts}


def in_turns(topology: Topology, engine: Engine, checks: list[CheckSpec], image: str,
             deadline: float | None = None) -> list[CheckResult]:
    """Exchanges with built-in servers run together; each one whose server is a program of
    the lab's runs alone, after them, in file order (labctl.checks.evidence.runs_alone), so
    a grade never depends on two checks meeting in a student's server, and its output is
    judged over that exchange's own window. Results come back in the order given."""
    results: list[CheckResult | None] = [None] * len(checks)
    together = [i for i, check in enumerate(checks) if not runs_alone(topology, check)]
    if together:
        for i, result in zip(together, _run_exchanges(topology, engine, [checks[i] for i in together], image)):
            results[i] = result
    for i, check in enumerate(checks):
        if results[i] is None:
            results[i] = _too_late(check) if _past(deadline) else _run_exchanges(topology, engine, [check], image)[0]
    return [result for result in results if result is not None]


def _past(deadline: float | None) -> bool:
    return deadline is not None and time.monotonic() > deadline


def _too_late(check: CheckSpec) -> CheckResult:
    return CheckResult(check.name, check.source, check.target, check.port, check.protocol, False, 0.0,
                       "not run: the time for this lab ran out (grade --timeout)")


def run_wire_check(topology: Topology, engine: Engine, check: CheckSpec, image: str) -> CheckResult:
    started = time.monotonic()
    wire = check.options
    during = wire.checks
    try:
        deadline = 60 + sum(check.timeout + (check.within or 0) for check in during)
        with Capture(topology, engine, image, wire.target, wire.filter, deadline) as capture:
            traffic = in_turns(topology, engine, during, image) if during else []
    except LabError as exc:  # a host it listens at is stopped, or its machine does not answer
        return CheckResult(check.name, "", check.target, None, check.protocol, False,
                           (time.monotonic() - started) * 1000, f"cannot capture: {exc}")
    packets = capture.packets
    problems = check.kind.capture_problems(topology, check, packets)
    failed = [f"{result.name} ({result.reason})" for result in traffic if not result.passed]
    if failed:
        problems.append("the traffic it watched failed: " + "; ".join(failed))
    return CheckResult(check.name, "", check.target, None, check.protocol, not problems,
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
        (runs if check.kind.runner == "command" else batches.setdefault(check.source, [])).append(index)

    # Kinds proven by a counter of the target's (ping): read it before and after the round.
    counted = [i for i, check in enumerate(checks) if _counts(topology, check) and i not in observations]
    watched = {_counter_key(topology, checks[i]) for i in counted}
    before = _counters(topology, engine, image, watched)

    def run_batches() -> None:
        with ThreadPoolExecutor(max_workers=MAX_PARALLEL) as reading:
            found = list(reading.map(lambda source: _credentials(topology, engine, source), list(batches)))
        jobs = {}
        for (source, indices), credentials in zip(batches.items(), found):
            specs = [probe_spec(topology, checks[index], index) for index in indices]
            jobs[source] = ProbeJob(_payload(specs), credentials, probe_seconds(specs))
        if not jobs:
            return
        try:
            probed = engine.probe_hosts(topology, image, jobs)
        except LabError as exc:
            probed = {source: exc for source in jobs}
        for source, result in probed.items():
            try:
                if isinstance(result, LabError):
                    raise result
                observations.update(_observed(source, result))
            except LabError as exc:  # the client host is stopped, paused or gone
                observations.update({index: _unreachable(source, exc) for index in batches[source]})

    def run_command(index: int) -> None:
        try:
            observations[index] = _run_command(topology, engine, checks[index])
        except LabError as exc:
            observations[index] = _unreachable(checks[index].source, exc)

    with ThreadPoolExecutor(max_workers=MAX_PARALLEL) as pool:
        futures = [pool.submit(run_command, index) for index in runs]
        run_batches()
        for future in futures:
            future.result()

    missing = {"error": "error", "detail": "the probe returned no result"}
    client_side = [client_problems(check, observations.get(index) or missing)
                   for index, check in enumerate(checks)]
    after = _counters(topology, engine, image, watched)
    keys = {i: _counter_key(topology, checks[i]) for i in counted}
    for index, problem in _counter_problems(keys, client_side, observations, checks, before, after).items():
        client_side[index].append(problem)
    # The server's side is read only where the client's side holds: the target's transcript,
    # and those of the hosts that must (or must not) have heard a broadcast or a group.
    server_side = [i for i, check in enumerate(checks)
                   if wants_server_side(topology, check) and not client_side[i]]
    witnessed = [i for i, check in enumerate(checks) if check.kind.witnesses(check) and not client_side[i]]
    readers = {target for i in server_side if (target := checks[i].target)} \
        | {host for i in witnessed for host in checks[i].kind.witnesses(checks[i])}
    logs = _logs(topology, engine, {target for i in server_side
                                    if (target := checks[i].target) and checks[i].server.log is not None},
                 window_start)

    def judged(transcripts: dict[str, list[dict[str, Any]]], unreadable: dict[str, str]) -> list[CheckResult]:
        results = []
        for index, check in enumerate(checks):
            observation = observations.get(index) or missing
            problems = list(client_side[index])
            entries: list[dict[str, Any]] = []
            if index in server_side and check.target in unreadable:
                problems = [f"cannot read the server's side: {unreadable[check.target]}"]
            elif index in server_side:
                server, entries = server_problems(topology, check, observation,
                                                  transcripts.get(check.target or "", []),
                                                  logs.get(check.target or ""))
                problems += server
            if index in witnessed:
                problems += check.kind.witness_problems(check, observation, {**transcripts, **unreadable})
            results.append(CheckResult(check.name, check.source, check.target, check.port, check.protocol,
                                       not problems, float(observation.get("elapsed_ms", 0.0)),
                                       "; ".join(problems), observation, entries))
        return results

    # The engine copies a host's output into its log as it comes, a moment after the host
    # wrote it: where a server's side is missing, read again, a few times, before saying so.
    # A round with listeners that must not hear is read twice, so a late line still counts.
    results = judged(*_transcripts(topology, engine, readers, window_start))
    for _ in range(LOG_SETTLE_READS):
        late = any(not result.passed and not client_side[index]
                   for index, result in enumerate(results) if index in server_side or index in witnessed)
        quiet_ones = any(checks[i].kind.absence_matters(checks[i]) for i in witnessed)
        if not late and not quiet_ones:
            break
        time.sleep(LOG_SETTLE_PAUSE)
        results = judged(*_transcripts(topology, engine, readers, window_start))
        if not late:
            break
    return results


def probe_seconds(specs: list[dict[str, Any]]) -> float:
    """How long one host's probe may take before it is killed: its checks run at once, so
    its slowest, each step of which may wait its whole timeout; a load check of a number of
    requests gets the most any probe gets."""
    def one(spec: dict[str, Any]) -> float:
        load = spec.get("load") or {}
        if load and not load.get("duration"):
            return PROBE_MOST
        return float(spec.get("timeout") or 5) * (len(spec.get("steps") or []) + 2) + float(load.get("duration") or 0)
    return min(PROBE_MOST, PROBE_SLACK + max((one(spec) for spec in specs), default=0.0))


def _payload(specs: list[dict[str, Any]]) -> str:
    return base64.b64encode(json.dumps(specs).encode()).decode()


def _observed(source: str, result: ExecResult) -> dict[int, dict[str, Any]]:
    """The batch's observations, from labctl's probe in the client host's network namespace
    (engine.probe_hosts): the exchange leaves from that host, while nothing running in it
    (root, and perhaps hostile) can replace the probe, its Python or what it prints."""
    if result.exit_code != 0:
        raise LabError(f"the probe on '{source}' failed: {result.last_line}")
    try:
        observations = json.loads(result.stdout)
        return {int(observation["id"]): observation for observation in observations}
    except (ValueError, TypeError, KeyError):
        raise LabError(f"the probe on '{source}' printed no result") from None


def _credentials(topology: Topology, engine: Engine, host: str) -> list[tuple[str, bytes, int]]:
    """What the probe presents and trusts as `host` (the lab's CAs, the host's certificate
    and key), put into its helper through the engine, never on a command line. They are the
    lab's own files beside the lab file; a lab brought up from another folder has none
    here, and then the host's copies are read (read-only mounts on this machine)."""
    pki = LabPki(topology.state_folder / "pki")
    credentials = pki.host(host)
    wanted = [(pki.ca_certificate, "ca.pem", 0o444), (pki.untrusted_ca_certificate, "untrusted-ca.pem", 0o444),
              (credentials.certificate, "host.pem", 0o444), (credentials.key, "host.key", 0o400)]
    files = []
    for path, name, mode in wanted:
        try:
            files.append((name, path.read_bytes(), mode))
        except OSError:
            try:
                copy, ended = engine.exec_bounded(topology, host, ["cat", f"{PKI_PATH}/{name}"], 1 << 16, 10.0)
            except LabError:
                continue   # a lab without TLS checks never needs it; one that does says why
            if ended and copy.exit_code == 0 and copy.stdout.startswith(b"-----BEGIN"):
                files.append((name, copy.stdout, mode))
    return files


def _run_command(topology: Topology, engine: Engine, check: CheckSpec) -> dict[str, Any]:
    argv = check.options.command
    if topology.hosts[check.source].runs_lab_image:
        # -k: a program that ignores SIGTERM is killed a second later.
        argv = ["timeout", "-k", "1", f"{check.timeout:g}", *argv]
    started = time.monotonic()
    # labctl's own bound too: the host's `timeout` is the host's to replace.
    result, ended = engine.exec_bounded(topology, check.source, argv, COMMAND_OUTPUT, check.timeout + COMMAND_GRACE)
    observation: dict[str, Any] = {
        "error": None, "detail": "", "exit_code": result.exit_code,
        "stdout": base64.b64encode(result.stdout).decode(),
        "stderr": base64.b64encode(result.stderr).decode(),
        "elapsed_ms": round((time.monotonic() - started) * 1000, 3),
    }
    if not ended or (result.exit_code == 124 and check.options.exit_code != 124):
        observation["error"], observation["detail"] = "timeout", f"the command ran over {check.timeout:g}s"
    return observation


def read_transcript(topology: Topology, engine: Engine, host: str,
                    since: float | None = None) -> list[dict[str, Any]]:
    """The host's transcript entries, or those from `since` on. They are read from the
    host's output, where its servers repeat each line after TRANSCRIPT_MARK: the engine
    keeps that output, so reading it starts no process in the host, and the engine skips
    what came before the window (a second early: the entry's own time decides)."""
    early = since - 1 if since is not None and since > 1 else None  # the engine takes only a positive time
    chunks = engine.logs(topology, host, since=early)
    mark = TRANSCRIPT_MARK.encode()
    entries = []
    for line in b"".join(chunks).splitlines():
        if not line.startswith(mark):
            continue
        try:
            entry = json.loads(line[len(mark):])
        except ValueError:
            continue
        if _well_formed(entry) and (since is None or entry["time"] >= since):
            entries.append(entry)
    return entries


def _well_formed(entry: Any) -> bool:
    """A transcript entry as the built-in servers write it; anything else in a host's output
    is data, never a reason to stop (or a way to be believed)."""
    return (isinstance(entry, dict) and isinstance(entry.get("time"), (int, float))
            and not isinstance(entry.get("time"), bool)
            and isinstance(entry.get("peer", ""), str) and isinstance(entry.get("port", 0), int)
            and isinstance(entry.get("peer_port"), (int, type(None))))


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


def _counts(topology: Topology, check: CheckSpec) -> bool:
    return (check.kind.proves_by_counter(check) and check.target is not None and check.server.mode != "off"
            and topology.hosts[check.target].runs_lab_image)


def _counter_key(topology: Topology, check: CheckSpec) -> tuple[str, tuple[str, str]]:
    """(target, counter): the counter the check's kind proves it by, in the check's family."""
    counter = check.kind.counter_for(family_of(topology, check))
    assert check.target is not None and counter is not None
    return check.target, counter


def _counters(topology: Topology, engine: Engine, image: str,
              watched: set[tuple[str, tuple[str, str]]]) -> dict[tuple[str, tuple[str, str]], int | str]:
    """Each (target, counter)'s value in the target's own network namespace, or why it
    could not be read: /proc/net/snmp holds IPv4's in a header line and a value line per
    section; /proc/net/snmp6 holds IPv6's one to a line (Icmp6InEchos 3)."""
    def read(item: tuple[str, tuple[str, str]]) -> tuple[tuple[str, tuple[str, str]], int | str]:
        host, (section, field) = item
        table = "/proc/net/snmp6" if section.endswith("6") else "/proc/net/snmp"
        try:
            # From a helper in the target's namespace: /proc/net is per namespace, and a
            # program in the target cannot stand in for the helper's own `cat`.
            result = engine.run_in_namespace(topology, host, image, ["cat", table])
        except LabError as exc:
            return item, str(exc)
        text = result.stdout.decode("utf-8", "replace").splitlines()
        if section.endswith("6"):
            values = [line.split() for line in text if line.startswith(section + field)]
            if result.exit_code == 0 and len(values) == 1 and values[0][0] == section + field \
                    and values[0][1:2] and values[0][1].isdigit():
                return item, int(values[0][1])
        else:
            lines = [line.split() for line in text if line.startswith(section + ":")]
            if result.exit_code == 0 and len(lines) >= 2 and field in lines[0] \
                    and len(lines[1]) > lines[0].index(field) and lines[1][lines[0].index(field)].isdigit():
                return item, int(lines[1][lines[0].index(field)])
        return item, f"no {section} {field} counter in {host}'s {table}"
    if not watched:
        return {}
    with ThreadPoolExecutor(max_workers=MAX_PARALLEL) as pool:
        return dict(pool.map(read, sorted(watched)))


def _counter_problems(keys: dict[int, tuple[str, tuple[str, str]]], client_side: list[list[str]],
                      observations: dict[int, dict[str, Any]], checks: list[CheckSpec],
                      before: dict, after: dict) -> dict[int, str]:
    """The server's side of counted checks: over the round the target's counter rose by at
    least what every passing check against it says arrived."""
    needed: dict[tuple[str, tuple[str, str]], int] = {}
    passing = [i for i in keys if not client_side[i]]
    for i in passing:
        needed[keys[i]] = needed.get(keys[i], 0) + checks[i].kind.counted(observations.get(i) or {})
    problems = {}
    for i in passing:
        key = keys[i]
        first, last = before.get(key), after.get(key)
        if isinstance(first, str) or isinstance(last, str) or first is None or last is None:
            problems[i] = f"cannot read the server's side: {first if isinstance(first, str) else last}"
        elif last - first < needed[key]:
            problems[i] = (f"the server's side: {key[0]}'s {key[1][0]} {key[1][1]} rose by {last - first} "
                           f"over the round, fewer than the {needed[key]} replies its clients got")
    return problems


def _unreachable(host: str, exc: LabError) -> dict[str, Any]:
    return {"error": "error", "detail": f"cannot run on '{host}': {exc}"}


def timed_run(topology: Topology, engine: Engine, checks: list[CheckSpec], image: str,
              deadline: float | None = None) -> tuple[list[CheckResult], float]:
    started = time.monotonic()
    results = run_checks(topology, engine, checks, image, deadline)
    return results, time.monotonic() - started
