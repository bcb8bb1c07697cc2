"""`labctl events --json` on the real engine reads every kind of event: one small lab comes
up, is checked, impaired and cleared, partitioned and healed, has a host stopped and
started, a capture, a scenario and a grade of one submission, and goes down. The stream
names the right subjects, and no helper (a check's probe, a capture, a network sidecar)
ever shows as a host."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import threading
from typing import Any, Callable

from labctl.engines.factory import open_engine, read_lab
from labctl.ops import faults, impairments, lifecycle
from labctl.ops.capture import Capture
from labctl.ops.events import EVENT_KINDS
from labctl.ops.grade import grade
from labctl.ops.scenarios import run_scenario

from .conftest import leftovers, load, quiet

NAME = "itest-events"
LAB = """
name: itest-events
networks:
  lan: {subnet: 10.167.1.0/24}
hosts:
  alice: {networks: [lan]}
  echo: {networks: [lan], services: [{tcp-echo: {port: 7}}]}
checks:
  - {name: tcp echo, from: alice, to: echo:7, tcp: {send: "hi\\n", expect: "hi\\n"}}
scenarios:
  once:
    - check: tcp echo
"""
WAIT = 60.0   # seconds for an event to arrive once its operation is done: a bound, not a pace


class Stream:
    """`labctl events --json` in a process of its own, its lines read as they come."""

    def __init__(self, lab_file) -> None:
        self.process = subprocess.Popen([sys.executable, "-m", "labctl", "-f", str(lab_file), "events", "--json"],
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.events: list[dict[str, Any]] = []
        self.changed = threading.Condition()
        ready = self.process.stderr.readline()   # said once it listens: no clock involved
        assert f"listening for events of lab '{NAME}'" in ready, ready + self.process.stderr.read()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stdout:
            with self.changed:
                self.events.append(json.loads(line))
                self.changed.notify_all()

    def wait_for(self, kind: str, action: str, subject: str | None = None,
                 where: Callable[[dict[str, Any]], bool] = lambda event: True) -> dict[str, Any]:
        def found() -> dict[str, Any] | None:
            return next((event for event in self.events if event["kind"] == kind and event["action"] == action
                         and subject in (None, event["subject"]) and where(event)), None)
        with self.changed:
            assert self.changed.wait_for(found, WAIT), f"no {kind} {action} {subject or ''} among {self.events}"
            event = found()
            assert event is not None
            return event

    def stop(self) -> tuple[int, str]:
        self.process.send_signal(signal.SIGINT)
        code = self.process.wait(timeout=30)
        return code, self.process.stderr.read()


def test_labctl_events_reads_every_kind_of_event(engine, image, tmp_path, monkeypatch):
    monkeypatch.setenv("LABCTL_SHAPER", "fallback")   # a kernel without sch_netem delays this way
    folder = tmp_path / "lab"
    folder.mkdir()
    (folder / "lab.yaml").write_text(textwrap.dedent(LAB).lstrip())
    (tmp_path / "class" / "ada").mkdir(parents=True)
    (tmp_path / "class" / "ada" / "notes.txt").write_text("nothing to mount: the lab is the grade\n")
    lab = load(folder / "lab.yaml")
    topology = lab.topology
    stream = Stream(lab.file)
    try:
        lifecycle.up(topology, engine, quiet)
        stream.wait_for("lab", "up", "", lambda event: event["detail"]["hosts"] == 2)
        for host in ("alice", "echo"):
            stream.wait_for("host", "started", host)
            stream.wait_for("host", "ready", host)
            stream.wait_for("network", "connected", "lan", lambda event, host=host: event["detail"] == {"host": host})
        stream.wait_for("network", "created", "lan")

        results, _seconds = lifecycle.check(lab, engine)
        assert all(result.passed for result in results)
        stream.wait_for("check", "running", "tcp echo")
        passed = stream.wait_for("check", "passed", "tcp echo")
        assert {key: passed["detail"][key] for key in ("source", "target", "port", "protocol", "reason", "attempts")} \
            == {"source": "alice", "target": "echo", "port": 7, "protocol": "tcp", "reason": "", "attempts": 1}

        impairments.change(topology, engine, "alice:lan", {"delay": "30ms"}, False, quiet)
        applied = stream.wait_for("impairment", "applied", "alice:lan")
        assert applied["detail"] == {"target": "alice:lan", "values": {"delay": "30ms"}}
        impairments.change(topology, engine, "alice:lan", {}, True, quiet)
        stream.wait_for("impairment", "cleared", "alice:lan")

        faults.partition(topology, engine, [["alice"], ["echo"]], quiet)
        assert stream.wait_for("fault", "partitioned")["detail"] == {"sides": [["alice"], ["echo"]]}
        faults.heal(topology, engine, quiet)
        assert stream.wait_for("fault", "healed")["detail"]["healed"] == ["partition alice -- echo"]

        faults.host_action(topology, engine, "echo", "stop", quiet)
        stream.wait_for("fault", "stop", "echo")
        stream.wait_for("host", "stopped", "echo")
        assert "exit_code" in stream.wait_for("host", "exited", "echo")["detail"]
        faults.host_action(topology, engine, "echo", "start", quiet)
        stream.wait_for("fault", "start", "echo")
        started = stream.wait_for("host", "ready", "echo", lambda event: event["time"] > passed["time"])

        with Capture(topology, engine, image, "lan", "tcp port 7") as capture:
            stream.wait_for("capture", "started", "lan", lambda event: event["detail"]["filter"] == "tcp port 7")
            assert lifecycle.check(lab, engine)[0][0].passed
        stopped = stream.wait_for("capture", "stopped", "lan")
        assert stopped["detail"]["bytes"] == len(capture.data) and stopped["detail"]["packets"] >= 1

        steps = run_scenario(topology, engine, lab.scenarios["once"], image, quiet, lambda result: None)
        assert [step.passed for step in steps] == [True]
        stream.wait_for("scenario", "started", "once", lambda event: event["detail"] == {"steps": 1})
        step = stream.wait_for("scenario", "step", "once")
        assert (step["detail"]["number"], step["detail"]["passed"]) == (1, True)
        assert stream.wait_for("scenario", "ended", "once")["detail"] == {"passed": 1, "failed": 0}

        rows = grade(read_lab, lambda each: open_engine(each.topology), lab.file, tmp_path / "class", 1, 60.0,
                     quiet, lab=lab)
        assert [(row.student, row.score, row.points, row.error) for row in rows] == [("ada", 1.0, 1.0, "")]
        stream.wait_for("grade", "started", "", lambda event: event["detail"] == {"submissions": 1})
        stream.wait_for("grade", "queued", "ada")
        for action in ("coming up", "checking"):
            assert stream.wait_for("grade", action, "ada")["detail"] == {"number": 1, "instance": f"{NAME}-grade1"}
        graded = stream.wait_for("grade", "graded", "ada")["detail"]
        assert (graded["score"], graded["points"], graded["failed"], graded["error"]) == (1.0, 1.0, [], "")
        assert stream.wait_for("grade", "finished")["detail"]["graded"] == 1
    finally:
        lifecycle.down(topology, engine, quiet)
    stream.wait_for("lab", "down")
    for host in ("alice", "echo"):
        stream.wait_for("host", "removed", host)
    stream.wait_for("network", "removed", "lan")
    code, said = stream.stop()
    assert code == 130 and said.strip().endswith("labctl: interrupted"), said

    events = stream.events
    assert {event["kind"] for event in events} == set(EVENT_KINDS)
    assert {event["lab"] for event in events} == {NAME}   # the instance's own events went to its own channel
    # Hosts only: never a check's probe, a capture's helper or a network sidecar.
    assert {event["subject"] for event in events if event["kind"] == "host"} == {"alice", "echo"}
    assert {event["subject"] for event in events if event["kind"] == "network"} == {"lan"}
    assert started["time"] < stream.wait_for("lab", "down")["time"]
    assert leftovers(engine, topology, image) == {}
