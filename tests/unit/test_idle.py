"""Idle at zero: no container of a lab declares a healthcheck, so a lab that sits idle
starts no process in any host; `status` learns each host's health by running its
readiness probe once, when asked."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from labctl.cli import views
from labctl.engines.apply import Deployment, _healthcheck
from labctl.engines.base import ExecResult, HostState
from labctl.engines.factory import read_lab
from labctl.errors import EngineError
from labctl.model.shaping import LiveState
from labctl.names import program
from labctl.ops.status import PROBE_SECONDS, lab_status
from labctl.render.compose import render
from labctl.render.pki import LabPki, ensure_pki
from labctl.render.stack import HELPERS_KEY, render_stack

from ..conftest import REPO, without_ipv6

# The default lab, with a sidecar from the start, and hosts of every kind of readiness.
EXTRA_HOSTS = """
  box:
    networks: [lan]
    image: nginx:alpine
    command: ["nginx", "-g", "daemon off;"]
    ready: {tcp: 80}
  job:
    networks: [lan]
    command: ./serve
    ready: {command: "test -f /tmp/up"}
"""


def lab_text() -> str:
    text = (REPO / "lab.yaml").read_text().replace("\nhosts:\n", "\nhosts:\n" + EXTRA_HOSTS.lstrip("\n"), 1)
    return text + "\nimpairments:\n  echo:dmz: {delay: 40ms}\n"


def test_no_container_of_a_rendered_lab_declares_a_healthcheck(write_lab, tmp_path):
    topology = read_lab(write_lab(lab_text())).topology
    document = render(topology, "labctl-host:test", LabPki(tmp_path / "pki"), tmp_path / "compose" / "l.yaml",
                      LiveState(partitions=[[["alice"], ["web"]]]))
    services = document["services"]
    assert {"web", "echo", "alice", "job", "lc-net-echo", "lc-net-alice", "lc-fabric"} <= set(services)
    checked = {name: service.get("healthcheck") for name, service in services.items()}
    # Only a host on an image of its own has one, and it turns that image's off.
    assert checked.pop("box") == {"disable": True}
    assert set(checked.values()) == {None}, checked
    assert _healthcheck(services["box"]["healthcheck"]) == {"test": ["NONE"]}
    Deployment(_NoClient(), topology, document, Path("."), print, 10, run=lambda *_: None, failure=lambda _: "")


def test_a_stack_declares_none_either(write_lab):
    topology = read_lab(write_lab(without_ipv6(lab_text()).replace("name: campus", "name: campus\nengine: swarm")
                                  )).topology
    for host in topology.hosts.values():
        for attachment in host.attachments:
            attachment.address = attachment.address or topology.networks[attachment.network].subnet[9]
    stack = render_stack(topology, "i", ensure_pki(topology, topology.state_folder / "pki"),
                         topology.state_folder / "stack.yaml", LiveState())
    assert "lc-net-echo" in stack[HELPERS_KEY]
    assert all("healthcheck" not in helper for helper in stack[HELPERS_KEY].values())
    assert {name: service["healthcheck"] for name, service in stack["services"].items()
            if "healthcheck" in service} == {"box": {"disable": True}}


def test_a_document_that_declares_a_healthcheck_is_refused(write_lab):
    topology = read_lab(write_lab(lab_text())).topology
    document = {"name": "lab-campus", "services": {"web": {
        "image": "x", "healthcheck": {"test": ["CMD", "true"], "interval": "30s"}}}}
    with pytest.raises(EngineError, match="'web' .* declares a healthcheck, which would run in the lab while it "
                                          "sits idle"):
        Deployment(_NoClient(), topology, document, Path("."), print, 10, run=lambda *_: None, failure=lambda _: "")


class _NoClient:
    api = None


class ProbingEngine:
    """The engine as `status` sees it: each host's state, and each probe's answer."""

    def __init__(self, topology, states: dict[str, str], answers: dict[str, object]):
        self.topology = topology
        self.host_states = states
        self.answers = answers
        self.probed: dict[str, list[str]] = {}

    def states(self, topology):
        return [HostState(name, "host", f"c-{name}", state, None, None, host=name)
                for name, state in self.host_states.items()]

    def attached(self, topology, host):
        return list(topology.hosts[host].networks)

    def exec_bounded(self, topology, host, argv, limit, seconds):
        assert seconds == PROBE_SECONDS
        self.probed[host] = argv
        answer = self.answers[host]
        if isinstance(answer, Exception):
            raise answer
        return answer


def test_status_runs_each_running_hosts_probe_once_and_says_why_one_fails(write_lab):
    topology = read_lab(write_lab(lab_text())).topology
    engine = ProbingEngine(topology, {
        "gw": "running", "web": "running", "alice": "running", "bob": "paused",
        "echo": "running", "box": "running", "job": "running"},
        {"web": (ExecResult(0, b"", b""), True),
         "echo": (ExecResult(1, b"", b"no answer on udp:7\n"), True),
         "box": (ExecResult(1, b"", b"sh: bash: not found\n"), True),
         "job": (ExecResult(-1, b"", b""), False)})
    report = lab_status(topology, engine)
    # Hosts with no probe (no program, or a router) are not asked; nor is a paused one.
    assert set(engine.probed) == {"web", "echo", "box", "job"}
    assert engine.probed["web"] == ["python3", "-I", "-S", program("health"), "tcp:8080", "tcp:8443", "tcp:9443"]
    assert engine.probed["job"] == ["sh", "-c", "test -f /tmp/up"]
    rows = {row.name: (row.health, row.health_reason) for row in report.hosts}
    assert rows == {
        "gw": (None, ""), "alice": (None, ""), "bob": (None, ""), "web": ("healthy", ""),
        "echo": ("unhealthy", "no answer on udp:7"),
        "box": ("unhealthy", "nothing accepts connections on port 80"),
        "job": ("unhealthy", f"its probe did not answer within {PROBE_SECONDS:.0f}s")}
    table = {line.split()[0]: line for line in views.status(report).splitlines()[1:]}
    assert "  unhealthy (no answer on udp:7)  " in table["echo"]
    assert "  healthy  " in table["web"] and "  -  " in table["alice"]
    entries = {entry["name"]: entry for entry in json.loads(views.as_json(report.as_json()))}
    assert (entries["echo"]["health"], entries["echo"]["health_reason"]) == ("unhealthy", "no answer on udp:7")
    assert entries["alice"]["health"] is None


def test_what_a_probe_says_is_shown_escaped_and_a_probe_that_cannot_run_is_unhealthy(write_lab):
    topology = read_lab(write_lab(lab_text())).topology
    engine = ProbingEngine(topology, {"web": "running", "job": "running", "echo": "running"},
                           {"web": EngineError("exec on 'web' failed: container is restarting"),
                            "job": (ExecResult(3, b"\x1b[2Jnot yet\n", b""), True),
                            "echo": (ExecResult(0, b"", b""), True)})
    report = lab_status(topology, engine)
    rows = {row.name: (row.health, row.health_reason) for row in report.hosts if row.health}
    assert rows["web"] == ("unhealthy", "its probe could not run: exec on 'web' failed: container is restarting")
    assert rows["job"] == ("unhealthy", "\x1b[2Jnot yet")
    table = views.status(report)
    assert "\x1b" not in table and "unhealthy (\\x1b[2Jnot yet)" in table
