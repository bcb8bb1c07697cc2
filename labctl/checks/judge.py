"""Judging a check from both sides: the client's observation (through the check's kind),
and what the server saw, from its transcript or its output."""

from __future__ import annotations

import hashlib
from typing import Any

from ..model.addressing import address_for, source_address_toward
from ..model.topology import Address, Topology
from .evidence import submission_mount
from .expectation import Expectation, with_client
from .spec import CheckSpec


def target_address(topology: Topology, check: CheckSpec) -> Address | None:
    """The address the check's client reaches its target at, in the check's family."""
    if check.target is None:
        return None
    return address_for(topology, topology.hosts[check.target], topology.hosts[check.source], check.family)


def family_of(topology: Topology, check: CheckSpec) -> int:
    """The address family the check runs over: its own, or what its target is reached by."""
    address = target_address(topology, check)
    return check.family or (address.version if address is not None else 4)


def judge(check: CheckSpec, observation: dict[str, Any]) -> tuple[bool, str]:
    """(passed, reason) for the client's side of one check."""
    problems = client_problems(check, observation)
    return (not problems), "; ".join(problems)


def client_problems(check: CheckSpec, observation: dict[str, Any]) -> list[str]:
    if check.load is not None:
        return _load_problems(check, observation)
    return check.kind.problems(check, observation)


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
    # auto: exchanges with built-in services that are meant to succeed, and a student's own
    # client's, whose word alone proves nothing (labctl.checks.evidence)
    target = topology.hosts[check.target]
    keeps_transcript = check.port is not None and target.service_at(check.transport, check.port) is not None
    if check.kind.runner == "command":
        return keeps_transcript and submission_mount(topology, topology.hosts[check.source]) is not None
    return check.kind.runner == "probe" and check.load is None and check.expect_error is None and keeps_transcript


def expected_peer(topology: Topology, check: CheckSpec) -> tuple[str, Address]:
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
        if check.kind.runner == "probe":
            # By the client's own (address, port); two clients on two hosts can use the same
            # port toward one server, so the port alone is what identifies it only when the
            # address changed on the way (and then the check says so).
            local = {(str(item[0]), item[1]) for item in observation.get("local", [])}
            by_port = [e for e in at_port if e.get("peer_port") in {port for _, port in local}]
            mine = [e for e in by_port if (e.get("peer"), e.get("peer_port")) in local] or by_port
        else:
            mine = [e for e in at_port if e.get("peer") == str(address)]
        problems += _transcript_problems(side, peer, address, at_port, mine)
    elif side.log is None:
        problems.append(f"'{target.name}' keeps no transcript on port {check.port}; "
                        "assert on its output with server: {log: ...}")
    if side.log is not None:
        expectation = with_client(side.log, address)
        if log is None:
            problems.append("the server's output could not be read")
        elif mismatch := expectation.mismatch(log):
            problems.append(f"server output {mismatch}")
    return problems, mine


def _transcript_problems(side, peer: str, address: Address, at_port: list[dict[str, Any]],
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




