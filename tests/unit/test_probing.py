"""Probing many client hosts from one helper (labctl.engines.probing), without an engine:
which hosts are probed, what a host that is not running gets, and the engine that refuses
the helper."""

from __future__ import annotations

import docker.errors
import pytest

from labctl.engines import probing
from labctl.engines.base import ExecResult, ProbeJob
from labctl.engines.factory import read_lab
from labctl.errors import LabError

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
    assert all(argv[-2:] == [probing.program("probe"), "W10="] and files == [("/opt/labctl/pki/ca.pem", b"x", 0o444)]
               for _, argv, files in ran)


def test_the_helper_sees_the_machine_s_processes_and_nothing_else_of_the_machine(write_lab):
    topology = read_lab(write_lab(LAB)).topology
    api = Api()
    client = type("Client", (), {"api": api})()
    with pytest.raises(AttributeError):   # stops at put_archive: only the creation is looked at
        probing.probe_together(client, topology, "img", {"a": ProbeJob("W10=", [])}, None)
    config = api.created[0]["host_config"]
    assert config["pid_mode"] == "host" and config["network_mode"] == "none"
    assert sorted(config["cap_add"]) == ["SYS_ADMIN", "SYS_PTRACE"]
    assert config["security_opt"] == ["no-new-privileges:true"]
    assert api.created[0]["labels"]["io.labctl.lab"] == "probed"


def test_an_unknown_host_is_refused_before_anything_runs(write_lab):
    topology = read_lab(write_lab(LAB)).topology
    client = type("Client", (), {"api": Api()})()
    with pytest.raises(LabError, match="nope"):
        probing.probe_together(client, topology, "img", {"nope": ProbeJob("W10=", [])}, None)
    assert not client.api.created
