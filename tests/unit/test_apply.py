"""Deploying a rendered document through the engine's API: what it reads of the document.
(The deployment itself runs on the real engine in every integration test.)"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from labctl.engines.apply import (KNOWN_KEYS, Deployment, batched_routes, completions, dependencies, read_document,
                                  seconds)
from labctl.engines.factory import read_lab
from labctl.errors import EngineError
from labctl.model.shaping import LiveState
from labctl.render.compose import literal, render, unliteral, write_compose
from labctl.render.pki import LabPki, ensure_pki

LAB = """
name: keys
networks:
  a: {subnet: 10.5.1.0/24}
  b: {subnet: 10.5.2.0/24}
hosts:
  r1: {networks: {a: 10.5.1.254, b: 10.5.2.254}, router: true}
  left: {networks: [a], env: {PRICE: "$5 and $${HOME}"}}
  right:
    networks: [b]
    services: [{tcp-echo: {port: 7}}]
  extra:
    networks: [a, b]
    files: ["./srv.py:/srv/srv.py"]
    command: python3 /srv/srv.py
    ready: {tcp: 9000}
impairments:
  right: {rate: 2mbit}
"""


@pytest.mark.parametrize("copies_files", [False, True])
def test_every_key_the_renderer_writes_is_one_the_deployer_knows(write_lab, tmp_path, copies_files):
    (tmp_path / "srv.py").write_text("print('hi')\n")
    topology = read_lab(write_lab(LAB)).topology
    live = LiveState(partitions=[[["left"], ["right"]]])
    pki = ensure_pki(topology, tmp_path / ".labctl/keys/pki") if copies_files else LabPki(tmp_path / "pki")
    document = render(topology, "labctl-host:test", pki, tmp_path / "compose" / "keys.yaml", live, copies_files)
    services = document["services"]
    assert {"left", "right", "r1", "extra", "lc-routes-left", "lc-net-right"} <= set(services)
    for name, service in services.items():
        assert set(service) <= KNOWN_KEYS, (name, set(service) - KNOWN_KEYS)
    # Helpers start once the host whose namespace they join has.
    assert dependencies(services["lc-routes-left"]) == {"left"}
    assert dependencies(services["lc-net-right"]) == {"right"}
    # Hosts start once the fabric has ended well: its rules keep them off the engine machine.
    assert dependencies(services["left"]) == completions(services["left"]) == {"lc-fabric"}
    assert completions(services["lc-routes-left"]) == set()


def test_the_document_is_read_back_with_its_values_as_the_lab_gave_them(write_lab, tmp_path):
    topology = read_lab(write_lab(LAB.replace("files: [\"./srv.py:/srv/srv.py\"]", ""))).topology
    output = tmp_path / "compose" / "keys.yaml"
    document = render(topology, "labctl-host:test", LabPki(tmp_path / ".labctl/keys/pki"), output)
    write_compose(document, output, topology.file)
    assert "$$5 and $$$${HOME}" in output.read_text()  # Compose reads it literally
    back = read_document(output)
    assert back["services"]["left"]["environment"] == {"PRICE": "$5 and $${HOME}"}
    assert unliteral(literal(document)) == document


def test_durations_read_as_compose_writes_them():
    assert seconds("30s") == 30 and seconds("1m30s") == 90 and seconds("500ms") == 0.5
    assert seconds(2) == 2.0
    with pytest.raises(EngineError, match="duration"):
        seconds("soon")


def test_a_key_the_deployer_does_not_know_is_refused_not_dropped(write_lab, tmp_path):
    (tmp_path / "srv.py").write_text("print('hi')\n")
    topology = read_lab(write_lab(LAB)).topology
    document = {"name": "lab-keys", "services": {"left": {"image": "x", "privileged": True}}}
    with pytest.raises(EngineError, match="'left' .* has 'privileged', which labctl cannot deploy"):
        Deployment(_NoClient(), topology, document, Path("."), print, 10,
                   run=lambda *_: None, failure=lambda _: "")


class _NoClient:
    api = None


def test_the_routes_helpers_are_run_from_one_admin_helper_and_nothing_else_is(write_lab, tmp_path):
    """labctl's own `up` sets every routed host's routes from one helper, with the very
    arguments the rendered file gives each host's own; every other service stays a container."""
    (tmp_path / "srv.py").write_text("print('hi')\n")
    topology = read_lab(write_lab(LAB)).topology
    document = render(topology, "labctl-host:test", LabPki(tmp_path / "pki"), tmp_path / "compose" / "keys.yaml")
    routed = {name: service for name, service in document["services"].items() if name.startswith("lc-routes-")}
    assert routed, "the lab routes between its networks"
    for name, service in document["services"].items():
        argv = batched_routes(service)
        if name in routed:
            assert argv == service["command"][2:] and argv[0] == "routes"
        else:
            assert argv is None, name
    # A service that only looks like one (another program, or no host's namespace) is its own container.
    left = dict(routed["lc-routes-left"])
    assert batched_routes({**left, "command": ["python3", "/elsewhere/netadmin.py", "routes"]}) is None
    assert batched_routes({**left, "network_mode": "host"}) is None


class _SilentLogs:
    """A followed log that says nothing until it is closed: what a host that neither ends nor
    says it listens gives."""

    def __init__(self) -> None:
        self.closed = threading.Event()

    def __iter__(self):
        self.closed.wait()
        raise OSError("closed")

    def close(self) -> None:
        self.closed.set()


class _SilentApi:
    def __init__(self) -> None:
        self.stream = _SilentLogs()

    def logs(self, *args, **kwargs):
        return self.stream


class _SilentClient:
    def __init__(self) -> None:
        self.api = _SilentApi()


def test_following_a_silent_host_ends_at_the_deadline_and_closes_the_stream(write_lab, tmp_path):
    (tmp_path / "srv.py").write_text("print('hi')\n")
    topology = read_lab(write_lab(LAB)).topology
    client = _SilentClient()
    deployment = Deployment(client, topology, {"services": {}}, Path("."), print, 10,
                            run=lambda *_: None, failure=lambda _: "")
    outcome: list[bool] = []
    follower = threading.Thread(target=lambda: outcome.append(deployment._says_serving("c", time.monotonic() + 0.2)),
                                daemon=True)
    follower.start()
    follower.join(30)
    assert not follower.is_alive() and outcome == [False]
    assert client.api.stream.closed.is_set()
