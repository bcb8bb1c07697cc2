"""Whose word a check rests on. Students' programs are root in their hosts and may lie, so a
check's proof must come from something they cannot replace or speak for: labctl's probe (run
from a helper that only shares the client host's network), a built-in server on a host that
runs nothing of the lab's, a teacher's program on a host with no student code, or the wire.

A host "runs the student's code" when it mounts or builds anything from the lab folder's
`submission/` (what `labctl grade` fills with each student's files). These rules say which
checks run alone, and which checks a lab may not declare because their only proof would be
the student's own say-so."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ..model.topology import Host, Topology

if TYPE_CHECKING:
    from .spec import CheckSpec

SUBMISSION = "submission"


def submission_mount(topology: Topology, host: Host) -> str | None:
    """What of the student's the host runs (a mount or build from submission/), or None."""
    student = topology.folder / SUBMISSION
    for mount in host.files:
        if _inside(mount.source, student):
            return f"./{mount.source.relative_to(topology.folder).as_posix()}"
    if host.build and _inside(Path(host.build["context"]), student):
        return f"./{Path(host.build['context']).relative_to(topology.folder).as_posix()}"
    return None


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def runs_labs_program(topology: Topology, check: CheckSpec) -> bool:
    """The check's server is a program of the lab's own (a command, an image): it may keep
    state between exchanges, so its checks run one at a time, in file order, each judged on
    what the server printed during its own exchange."""
    if check.target is None or check.fan_out is not None:
        return False
    target = topology.hosts[check.target]
    return bool(target.command) or not target.runs_lab_image


def runs_alone(topology: Topology, check: CheckSpec) -> bool:
    return not check.overlap and runs_labs_program(topology, check)


def evidence_problem(topology: Topology, check: CheckSpec) -> tuple[tuple[str, ...], str] | None:
    """(key path under the check, why) when the check's proof would rest on what a lab host
    says of itself, or None. Exchange kinds are judged by labctl's probe and are always fine."""
    if check.kind.runner != "command" or not check.source:
        return None
    client = topology.hosts[check.source]
    if client.services:
        # Its command would share the host with built-in servers whose transcripts are proof.
        return ("from",), (f"'{client.name}' runs built-in services, whose transcripts are evidence; "
                           "run the command from a host of its own")
    student = submission_mount(topology, client)
    if student is None:
        return None
    target = topology.hosts[check.target] if check.target else None
    if target is not None and check.server.mode != "off" and submission_mount(topology, target) is None:
        keeps_transcript = (check.port is not None and target.runs_lab_image
                            and target.service_at(check.transport, check.port) is not None)
        if check.server.log is not None:
            return None
        if keeps_transcript and check.server.received is not None:
            return None
        if keeps_transcript:
            # A bare connection from the client's address is not the work: say what arrived.
            return ("server",), (f"'{client.name}' runs the student's code ({student}), so its exchange "
                                 "with the built-in server must be proven by what that server received: "
                                 "add server: {received: ...}")
    return ("server",), (f"its proof would come only from the student's own code ('{client.name}' runs "
                         f"{student}): prove it on the server's side, on a host that runs nothing from "
                         "submission/ (a reference program's server: {log: ...}, or a built-in server)")
