"""Probing many client hosts from one helper (labctl.engines.probing), without an engine:
which hosts are probed, what a host that is not running gets, and the engine that refuses
the helper."""

from __future__ import annotations

import io
import json
import tarfile

import docker.errors
import pytest

from labctl.engines import probing
from labctl.engines.base import ExecResult, ProbeJob
from labctl.engines.factory import read_lab
from labctl.errors import EngineError, LabError

LAB = """
name: probed
networks:
  net: {subnet: 10.7.1.0/24}
hosts:
  a: {networks: [net]}
  b: {networks: [net]}
  c: {networks: [net]}
  srv: {networks: [net], services: [{tcp-echo: {port: 7}}]}
"""


class Api:
    """The engine's answers: a and b run, c has a container that has stopped."""

    def __init__(self, refuse: bool = False):
        self.refuse = refuse
        self.created: list[dict] = []

    def containers(self, all, filters):
        return [{"Id": host * 32, "Labels": {"io.labctl.host": host}} for host in ("a", "b", "c")]

    def inspect_container(self, container):
        return {"Id": container, "State": {"Pid": 0 if container.startswith("c") else 4242}}

    def create_host_config(self, **options):
        return options

    def create_container(self, image, command, **options):
        if self.refuse:
            raise docker.errors.APIError("privileged mode is incompatible with user namespaces")
        self.created.append({"command": command, **options})
        return {"Id": "helper"}


def test_a_host_that_is_not_running_is_its_own_error_and_a_refused_helper_means_one_per_host(write_lab):
    topology = read_lab(write_lab(LAB)).topology
    jobs = {host: ProbeJob("W10=", [("ca.pem", b"x", 0o444)]) for host in ("a", "b", "c")}
    ran: list[tuple[str, list[str], list]] = []

    def one(host, argv, files):
        ran.append((host, argv, files))
        return ExecResult(0, b"[]", b"")

    client = type("Client", (), {"api": Api(refuse=True)})()
    results = probing.probe_together(client, topology, "img", jobs, one)
    assert isinstance(results["c"], LabError) and "'c' is not running" in str(results["c"])
    assert {host for host, _, _ in ran} == {"a", "b"} and results["a"].stdout == b"[]"
    spec = f"{probing.FOLDER}/spec"
    assert all(argv[-2:] == [probing.program("probe"), f"@{spec}"]
               and files == [("/opt/labctl/pki/ca.pem", b"x", 0o444), (spec, b"W10=", 0o400)]
               for _, argv, files in ran)


class Helper(Api):
    """An engine that runs the helper: its files as put, its statuses and outputs as a
    helper that probed `a` (index 0) and `b` (index 1) would leave them."""

    def __init__(self, said: bytes):
        super().__init__()
        self.said, self.put, self.removed = said, {}, []

    def put_archive(self, container, path, data):
        with tarfile.open(fileobj=io.BytesIO(data)) as read:
            self.put = {m.name: read.extractfile(m).read() for m in read if m.isfile()}

    def start(self, container):
        pass

    def wait(self, container, timeout):
        self.bound = timeout
        return {"StatusCode": 0}

    def logs(self, container, stdout, stderr):
        return self.said

    def get_archive(self, container, path):
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as tar:
            for name, data in (("labctl-probe/0/out", b'[{"id": 0}]'), ("labctl-probe/1/err", b"netadmin: gone"),
                               ("labctl-probe/0/pki/host.key", b"key")):
                entry = tarfile.TarInfo(name)
                entry.size = len(data)
                tar.addfile(entry, io.BytesIO(data))
        return [buffer.getvalue()], {}

    def remove_container(self, container, force):
        self.removed.append(container)


def test_each_host_gets_its_own_status_and_output_and_the_helper_is_removed(write_lab):
    topology = read_lab(write_lab(LAB)).topology
    api = Helper(b'{"0": 0, "1": 124}\n')
    client = type("Client", (), {"api": api})()
    jobs = {"a": ProbeJob("QQ==", [("host.key", b"key-a", 0o400)], 12.0), "b": ProbeJob("Qg==", [], 40.0)}
    results = probing.probe_together(client, topology, "img", jobs, None)
    assert results["a"] == ExecResult(0, b'[{"id": 0}]', b"") and results["b"] == ExecResult(124, b"", b"netadmin: gone")
    assert api.removed == ["helper"]
    listed = json.loads(api.put["tmp/labctl-probe/jobs.json"])
    assert [(job["host"], job["seconds"]) for job in listed] == [("a", 12.0), ("b", 40.0)]
    assert api.put["tmp/labctl-probe/0/spec"] == b"QQ==" and api.put["tmp/labctl-probe/0/pki/host.key"] == b"key-a"
    assert api.bound == 40.0 + probing.SLACK   # one wave: the slowest job's bound
    config = api.created[0]["host_config"]
    assert config["pid_mode"] == "host" and config["network_mode"] == "none"
    assert sorted(config["cap_add"]) == ["SYS_ADMIN", "SYS_PTRACE"]
    assert config["security_opt"] == ["no-new-privileges:true"] and config["pids_limit"] > 0
    assert api.created[0]["labels"]["io.labctl.lab"] == "probed"


@pytest.mark.parametrize("said", [b"", b"Traceback\n", b"[1, 2]\n"])
def test_a_helper_that_says_no_result_is_one_line_and_still_removed(write_lab, said):
    topology = read_lab(write_lab(LAB)).topology
    api = Helper(said)
    client = type("Client", (), {"api": api})()
    with pytest.raises(EngineError, match="with no result"):
        probing.probe_together(client, topology, "img", {"a": ProbeJob("QQ==", [])}, None)
    assert api.removed == ["helper"]


def test_a_probe_s_bound_follows_its_slowest_check():
    from labctl.ops.checks import PROBE_MOST, PROBE_SLACK, probe_seconds
    assert probe_seconds([{"timeout": 2, "steps": [{}]}, {"timeout": 5, "steps": []}]) == 10 + PROBE_SLACK
    assert probe_seconds([{"timeout": 2, "load": {"clients": 4, "duration": 20}}]) == 24 + PROBE_SLACK
    assert probe_seconds([{"timeout": 2, "load": {"clients": 4, "requests": 100, "duration": None}}]) == PROBE_MOST


def test_an_unknown_host_is_refused_before_anything_runs(write_lab):
    topology = read_lab(write_lab(LAB)).topology
    client = type("Client", (), {"api": Api()})()
    with pytest.raises(LabError, match="nope"):
        probing.probe_together(client, topology, "img", {"nope": ProbeJob("W10=", [])}, None)
    assert not client.api.created
