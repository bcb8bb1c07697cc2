"""Engines of today: the API version is negotiated on every client labctl builds, never
pinned; paramiko is an optional extra whose absence costs only the ssh engine, in one line;
and where an engine behaves differently in a way labctl depends on (its firewall backend,
its API floor, rootless, another product), labctl says so in one line. Detection is tested
on recorded /version and /info answers, no engine needed (tests/integration's
test_engine_api.py checks the negotiation against the real one)."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import docker
import pytest
import requests
import requests.adapters

from labctl.engines import containers, ssh
from labctl.engines.compose import ComposeEngine
from labctl.engines.versions import differences, read_facts, verdict
from labctl.ops import doctor

from ..conftest import REPO

PACKAGE = REPO / "labctl"

# -- no pinned API version ---------------------------------------------------------------------

# What builds a docker client; each must be given version="auto", written out.
CLIENT_BUILDERS = {"DockerClient", "APIClient", "from_env"}


def _callee(call: ast.Call) -> str:
    func = call.func
    return func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""


def _client_constructions(tree: ast.AST) -> list[ast.Call]:
    """Calls of DockerClient, APIClient and from_env, and the super().__init__ of a class
    derived from DockerClient or APIClient: every place a docker client is built."""
    found = [node for node in ast.walk(tree) if isinstance(node, ast.Call) and _callee(node) in CLIENT_BUILDERS]
    for cls in (node for node in ast.walk(tree) if isinstance(node, ast.ClassDef)):
        # docker's classes, and labctl's bounded ones derived from them (BoundedAPIClient).
        if not any((base.attr if isinstance(base, ast.Attribute) else getattr(base, "id", "")).endswith(
                ("DockerClient", "APIClient")) for base in cls.bases):
            continue
        found += [node for node in ast.walk(cls) if isinstance(node, ast.Call)
                  and isinstance(node.func, ast.Attribute) and node.func.attr == "__init__"
                  and isinstance(node.func.value, ast.Call) and _callee(node.func.value) == "super"]
    return found


def _version_argument(call: ast.Call) -> ast.expr | None:
    keyword = next((k.value for k in call.keywords if k.arg == "version"), None)
    # DockerClient(base_url, version, ...) and APIClient alike: the version is the second.
    return keyword if keyword is not None else (call.args[1] if len(call.args) > 1 else None)


def _looks_like_api_version(node: ast.AST) -> bool:
    return isinstance(node, ast.Constant) and isinstance(node.value, str) and \
        bool(__import__("re").fullmatch(r"1\.\d{2}", node.value))


def test_every_docker_client_is_built_with_a_negotiated_version():
    constructions: dict[str, list[str]] = {}
    problems = []
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        where = str(path.relative_to(REPO))
        for call in _client_constructions(tree):
            version = _version_argument(call)
            constructions.setdefault(where, []).append(_callee(call))
            if not (isinstance(version, ast.Constant) and version.value == "auto"):
                problems.append(f"{where}:{call.lineno}: {ast.unparse(call)} does not say version=\"auto\"")
        # A literal API version passed anywhere (or kept as a constant to pass) is a pin.
        for node in ast.walk(tree):
            if isinstance(node, ast.keyword) and node.arg in ("version", "api_version") \
                    and _looks_like_api_version(node.value):
                problems.append(f"{where}:{node.value.lineno}: version={node.value.value!r} pinned")
            if isinstance(node, ast.Assign) and _looks_like_api_version(node.value) and any(
                    isinstance(t, ast.Name) and "API" in t.id.upper() and "VERSION" in t.id.upper() for t in node.targets):
                problems.append(f"{where}:{node.lineno}: {ast.unparse(node)} pins an API version")
    assert not problems, problems
    # The two places clients are built: the local engine's, and the one over SSH.
    assert "from_env" in constructions["labctl/engines/containers.py"]
    assert "__init__" in constructions["labctl/engines/ssh.py"]


def test_the_scan_sees_a_pin(tmp_path):
    """The scan above fails on what it is meant to catch."""
    for source in ('docker.DockerClient(base_url="unix://x", version="1.41")',
                   'docker.from_env(timeout=3)', 'APIClient("unix://x", "1.44")'):
        (call,) = _client_constructions(ast.parse(source))
        version = _version_argument(call)
        assert not (isinstance(version, ast.Constant) and version.value == "auto"), source


def test_the_local_client_asks_for_auto(monkeypatch):
    """At the import boundary: DockerClient.from_env (as the bounded client inherits it) is
    what labctl calls for the local engine."""
    asked = {}

    class Answering:
        def ping(self):
            return True

    def from_env(cls, **kwargs):
        asked.update(kwargs)
        return Answering()
    monkeypatch.setattr(docker.DockerClient, "from_env", classmethod(from_env))
    containers.docker_client()
    assert asked["version"] == "auto"


class FakeEngine(requests.adapters.BaseAdapter):
    """Stands in for the SSH adapter: an engine that speaks API 1.52 with a floor of 1.44
    (as Docker 29 does), refusing requests below it, and records every path asked."""

    def __init__(self):
        super().__init__()
        self.paths: list[str] = []

    def send(self, request, **kwargs):
        path = request.path_url
        self.paths.append(path)
        response = requests.Response()
        response.request, response.url = request, request.url
        version = path.split("/")[1] if path.startswith("/v1.") else None
        if version is not None and float(version[1:]) < 1.44:
            response.status_code = 400
            response._content = json.dumps({"message": f"client version {version[1:]} is too old. "
                                                       "Minimum supported API version is 1.44"}).encode()
        elif path.endswith("/version"):
            response.status_code = 200
            response._content = json.dumps({"Version": "29.0.0", "ApiVersion": "1.52",
                                            "MinAPIVersion": "1.44"}).encode()
        else:
            response.status_code = 200
            response._content = b"OK"
        response.headers["Content-Type"] = "application/json" if path.endswith("/version") else "text/plain"
        return response

    def close(self):
        pass


def test_the_ssh_client_speaks_the_remote_engines_version(monkeypatch, tmp_path):
    """The client over SSH asks the engine at the other end, through the SSH adapter, which
    version it speaks, and uses it: a Docker 29 engine, which refuses 1.41, answers."""
    engine = FakeEngine()
    monkeypatch.setattr(ssh, "_VerifiedSSHAdapter", lambda target, route, timeout: engine)
    client = ssh.remote_client(ssh.parse_ssh_url("ssh://u@192.0.2.7"), config_path=tmp_path / "none")
    assert client.api.api_version == "1.52"
    assert engine.paths == ["/version", "/v1.52/_ping"]  # asked unversioned, then used
    assert ssh.is_ssh(client)


# -- paramiko, an optional extra ---------------------------------------------------------------

WITHOUT_PARAMIKO = """
import importlib, pkgutil, sys
sys.modules["paramiko"] = None   # what a missing package looks like to import
import labctl
failed = []
for module in pkgutil.walk_packages(labctl.__path__, "labctl."):
    if module.name in ("labctl.__main__",):
        continue
    try:
        importlib.import_module(module.name)
    except ImportError as exc:
        failed.append(f"{module.name}: {exc}")
print("\\n".join(failed))
"""


def test_every_module_loads_without_paramiko():
    """A compose-only install (no labctl-net[ssh]) loads every module of labctl."""
    result = subprocess.run([sys.executable, "-c", WITHOUT_PARAMIKO], capture_output=True, text=True,
                            timeout=120, cwd=REPO)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "", result.stdout


def _labctl_without_paramiko(*args: str) -> subprocess.CompletedProcess:
    program = ("import sys; sys.modules['paramiko'] = None; from labctl.cli.main import main; "
               f"sys.exit(main({list(args)!r}))")
    return subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=120, cwd=REPO)


@pytest.mark.parametrize("args", [("--engine", "ssh://u@192.0.2.7", "doctor"),
                                  ("--engine", "ssh://u@192.0.2.7", "-f", "lab.yaml", "status")])
def test_an_ssh_engine_without_paramiko_fails_in_one_line_naming_the_extra(args):
    result = _labctl_without_paramiko(*args)
    assert result.returncode == 2, result.stderr
    assert result.stderr == "labctl: error: the ssh engine needs paramiko: pip install 'labctl-net[ssh]'\n"


# -- what differs, from recorded answers --------------------------------------------------------

# The engine this repository's tests run on: Debian 12's docker.io, as it answers.
DOCKER_20_10 = ({"Version": "20.10.24+dfsg1", "ApiVersion": "1.41", "MinAPIVersion": "1.12",
                 "Components": [{"Name": "Engine", "Version": "20.10.24+dfsg1"}]},
                {"ServerVersion": "20.10.24+dfsg1", "OperatingSystem": "Debian GNU/Linux 12 (bookworm)",
                 "SecurityOptions": ["name=seccomp,profile=default"]})
DOCKER_25 = ({"Version": "25.0.5", "ApiVersion": "1.44", "MinAPIVersion": "1.24",
              "Components": [{"Name": "Engine", "Version": "25.0.5"}]},
             {"ServerVersion": "25.0.5", "OperatingSystem": "Ubuntu 24.04 LTS",
              "SecurityOptions": ["name=apparmor", "name=seccomp,profile=builtin", "name=cgroupns"]})
DOCKER_28 = ({"Version": "28.5.1", "ApiVersion": "1.51", "MinAPIVersion": "1.24",
              "Components": [{"Name": "Engine", "Version": "28.5.1"}]},
             {"ServerVersion": "28.5.1", "OperatingSystem": "Debian GNU/Linux 13 (trixie)",
              "FirewallBackend": {"Driver": "iptables"},
              "SecurityOptions": ["name=seccomp,profile=builtin", "name=cgroupns"]})
DOCKER_29 = ({"Version": "29.0.0", "ApiVersion": "1.52", "MinAPIVersion": "1.44",
              "Components": [{"Name": "Engine", "Version": "29.0.0"}]},
             {"ServerVersion": "29.0.0", "OperatingSystem": "Fedora Linux 43",
              "FirewallBackend": {"Driver": "iptables+firewalld", "Info": [["ReloadedAt", "2025-11-11T10:00:00Z"]]},
              "SecurityOptions": ["name=seccomp,profile=builtin", "name=selinux", "name=cgroupns"]})
DOCKER_29_NFTABLES = (DOCKER_29[0], {**DOCKER_29[1], "FirewallBackend": {"Driver": "nftables"}})


def _facts(recorded):
    return read_facts(*recorded)


@pytest.mark.parametrize("recorded, firewall, reported", [
    (DOCKER_20_10, "iptables", False), (DOCKER_25, "iptables", False),
    (DOCKER_28, "iptables", True), (DOCKER_29, "iptables+firewalld", True)])
def test_engines_on_iptables_are_supported(recorded, firewall, reported):
    facts = _facts(recorded)
    assert (facts.firewall, facts.firewall_reported, facts.nftables) == (firewall, reported, False)
    assert differences(facts, cli_api="1.52") == []
    line = verdict(facts, [])
    assert line.endswith(": supported") and facts.version in line and f"API {facts.api}" in line


def test_the_local_engine_is_read_as_it_answers():
    facts = _facts(DOCKER_20_10)
    assert (facts.product, facts.version, facts.api, facts.min_api, facts.rootless) == \
        ("Docker", "20.10.24+dfsg1", "1.41", "1.12", False)
    assert verdict(facts, []) == ("Docker 20.10.24+dfsg1 (API 1.41, floor 1.12), "
                                  "firewall iptables (the engine does not say): supported")


def test_nftables_firewall_is_said_with_what_labctl_does():
    facts = _facts(DOCKER_29_NFTABLES)
    assert facts.nftables
    (found,) = differences(facts, cli_api="1.52")
    assert not found.breaks
    assert "no DOCKER-USER chain" in found.line and '"firewall-backend": "iptables"' in found.line
    assert "\n" not in verdict(facts, [found]) and verdict(facts, [found]).startswith("Docker 29.0.0")


def test_an_api_floor_above_this_machines_cli_matters_to_a_swarm_only():
    facts = _facts(DOCKER_29)
    (found,) = differences(facts, cli_api="1.41")
    assert found.breaks and found.only_swarm
    assert "API 1.41, below the engine's floor 1.44" in found.line and "docker stack deploy" in found.line
    assert differences(facts, cli_api="1.41", stack_deploy=False) == []
    assert differences(facts, cli_api="1.44") == [] and differences(facts, cli_api=None) == []
    # Docker 25 kept the old floor: an old CLI still deploys there.
    assert differences(_facts(DOCKER_25), cli_api="1.41") == []


def test_an_engine_older_than_20_10_breaks():
    old = ({"Version": "19.03.15", "ApiVersion": "1.40", "MinAPIVersion": "1.12"}, {})
    (found,) = differences(_facts(old))
    assert found.breaks and not found.only_swarm and "older than Docker 20.10" in found.line


@pytest.mark.parametrize("recorded, says", [
    ((DOCKER_28[0], {**DOCKER_28[1], "SecurityOptions": ["name=seccomp,profile=builtin", "name=rootless"]}),
     "a rootless engine: untested"),
    ((DOCKER_28[0], {**DOCKER_28[1], "OperatingSystem": "Docker Desktop"}), "Docker Desktop: untested"),
    (({"Version": "5.4.2", "ApiVersion": "1.41", "MinAPIVersion": "1.24",
       "Components": [{"Name": "Podman Engine", "Version": "5.4.2"}]}, {}), "Podman: untested"),
])
def test_what_labctl_is_not_tested_on_is_said(recorded, says):
    (found,) = differences(_facts(recorded))
    assert found.line.startswith(says) and not found.breaks


class RecordedClient:
    """A docker client that answers /version and /info as recorded."""

    def __init__(self, recorded):
        self.answers = recorded
        self.api = self

    def version(self):
        return self.answers[0]

    def info(self):
        return self.answers[1]


def test_doctor_says_one_line(monkeypatch):
    monkeypatch.setattr(doctor, "cli_api_version", lambda: "1.41")
    supported = doctor.engine_support(RecordedClient(DOCKER_28))
    assert supported.ok and supported.detail.endswith(": supported")
    nftables = doctor.engine_support(RecordedClient(DOCKER_29_NFTABLES))
    # Two differences, one line: the old CLI matters to Swarm labs only, so neither fails doctor.
    assert (nftables.ok, nftables.required) == (False, False)
    assert "no DOCKER-USER chain" in nftables.detail and "floor 1.44" in nftables.detail
    old = doctor.engine_support(RecordedClient(({"Version": "19.03.15", "ApiVersion": "1.40"}, {})))
    assert (old.ok, old.required) == (False, True)


def test_up_says_nothing_unless_something_differs():
    assert ComposeEngine(RecordedClient(DOCKER_20_10)).differences() == []
    assert ComposeEngine(RecordedClient(DOCKER_29)).differences() == []
    (note,) = ComposeEngine(RecordedClient(DOCKER_29_NFTABLES)).differences()
    assert "no DOCKER-USER chain" in note


def test_up_says_each_difference_before_it_starts(monkeypatch):
    from labctl.ops import lifecycle

    class Stopped(Exception):
        pass

    class Engine:
        def snapshot(self, topology):
            return {"running"}

        def differences(self):
            return ["the engine differs"]

    def prepare(topology, engine, progress):
        raise Stopped

    monkeypatch.setattr(lifecycle, "prepare", prepare)
    said: list[str] = []
    with pytest.raises(Stopped):
        lifecycle.up(object(), Engine(), said.append)
    assert said == ["the engine differs"]
