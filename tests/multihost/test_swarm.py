"""The default lab on a Swarm of three machines: every check across the overlay;
impairments, partitions, host faults and disconnections reaching hosts on other machines;
then one machine stops, and only the checks that need it fail, saying why."""

from __future__ import annotations

import csv
import json
import os
import re
import statistics
import subprocess
import sys
from pathlib import Path

import paramiko
import pytest

from labctl.engines import cluster
from labctl.engines.base import bind_addresses
from labctl.engines.factory import read_lab
from labctl.engines.kinds import EngineChoice
from labctl.engines.machines import wait_for_engine
from labctl.engines.ssh import SshTarget, generate_key, known_hosts_line, remote_client
from labctl.engines.swarm import SwarmEngine
from labctl.errors import EngineError
from labctl.names import LAB_LABEL, SERVICES_PATH

from ..conftest import REPO, without_ipv6
from .conftest import names

M1, M2, M3 = names()
# Clients and the router on one machine, each server on another: every exchange crosses
# machines, and stopping M3 takes only the echo server away.
PLACEMENT = {"gw": M1, "alice": M1, "bob": M1, "web": M2, "echo": M3}


def labctl(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "labctl", *args], capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture(scope="module")
def lab_file(machines: Path) -> Path:
    text = without_ipv6((REPO / "lab.yaml").read_text()).replace("name: campus", "name: mh-campus")
    for host, machine in PLACEMENT.items():
        text = re.sub(rf"\n  {host}:\n", f"\n  {host}:\n    placement: {machine}\n", text, count=1)
    path = machines.parent / "lab" / "lab.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(text)
    return path


def on_swarm(lab_file: Path, machines: Path, *args: str) -> subprocess.CompletedProcess:
    return labctl("--engine", "swarm", "--cluster", str(machines), "-f", str(lab_file), *args)


def leftovers(machines: Path, lab: str) -> dict[str, list[str]]:
    """Everything of the lab on any machine: services, containers, networks, configs,
    secrets, and the lab host images labctl copied there."""
    clients = cluster.connect_all(cluster.load_cluster(machines))
    try:
        selector = {"label": f"{LAB_LABEL}={lab}"}
        found: dict[str, list[str]] = {}
        manager = clients[M1]
        found["services"] = [s.name for s in manager.services.list(filters=selector)]
        found["configs"] = [c.name for c in manager.configs.list(filters=selector)]
        found["secrets"] = [s.name for s in manager.secrets.list(filters=selector)]
        for name, client in clients.items():
            found[f"{name} containers"] = [c.name for c in client.containers.list(all=True, filters=selector)]
            found[f"{name} networks"] = [n.name for n in client.networks.list(filters=selector)]
            found[f"{name} images"] = [t for i in client.images.list() for t in i.tags if t.startswith("labctl-host:")]
        return {kind: items for kind, items in found.items() if items}
    finally:
        for client in clients.values():
            client.close()


def test_cluster_status_shows_three_ready_machines(machines):
    result = labctl("--cluster", str(machines), "cluster", "status", "--json")
    assert result.returncode == 0, result.stderr
    rows = {row["machine"]: row for row in json.loads(result.stdout)}
    assert set(rows) == {M1, M2, M3}
    assert rows[M1]["role"] == "manager" and rows[M2]["role"] == rows[M3]["role"] == "worker"
    assert all(row["state"] == "ready" for row in rows.values())


def test_an_unknown_or_changed_host_key_is_refused(machines, tmp_path):
    machine = cluster.load_cluster(machines).machines[M1]
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    with pytest.raises(EngineError, match="host key not in"):
        remote_client(SshTarget(machine.target.host, "root", 22, machine.target.key, empty))
    impostor = generate_key(tmp_path / "impostor")
    empty.write_text(known_hosts_line(machine.target, impostor) + "\n")
    with pytest.raises(EngineError, match="CHANGED"):
        remote_client(SshTarget(machine.target.host, "root", 22, machine.target.key, empty))


@pytest.fixture(scope="class")
def running_lab(machines, lab_file, local_engine):
    """The default lab, pinned as PLACEMENT; down afterwards, leaving nothing on any machine."""
    up = on_swarm(lab_file, machines, "up")
    try:
        assert up.returncode == 0, up.stderr
        assert "copying" in up.stderr or "already on every machine" in up.stderr
        yield lab_file
    finally:
        local_engine.containers.get(M3).start()  # a test may have stopped it
        wait_for_engine(cluster.load_cluster(machines).machines[M3].target)
        down = on_swarm(lab_file, machines, "down")
        assert down.returncode == 0, down.stderr
    assert leftovers(machines, "mh-campus") == {}


def check(lab_file: Path, machines: Path, *names: str) -> dict[str, dict]:
    result = on_swarm(lab_file, machines, "check", "--json", *names)
    assert result.returncode in (0, 1), result.stderr
    return {r["name"]: r for r in json.loads(result.stdout)["checks"]}


def passed(results: dict[str, dict]) -> dict[str, bool]:
    return {name: result["passed"] for name, result in results.items()}


class TestTheDefaultLabOnTheSwarm:
    """One deployment for these tests (class scope, so it is down before the cluster is)."""

    def test_default_lab_across_three_machines(self, machines, running_lab):
        status = on_swarm(running_lab, machines, "status", "--json")
        assert status.returncode == 0, status.stderr
        placed = {s["name"]: s["machine"] for s in json.loads(status.stdout) if s["role"] == "host"}
        assert placed == PLACEMENT

        results = check(running_lab, machines)
        assert len(results) == 12
        assert all(passed(results).values()), [r for r in results.values() if not r["passed"]]
        assert all(PLACEMENT[r["source"]] != PLACEMENT[r["target"]] for r in results.values() if r["source"])

    def test_a_shell_reaches_a_host_on_another_machine(self, machines, running_lab):
        shell = on_swarm(running_lab, machines, "shell", "echo", "--", "sh", "-c", "hostname; exit 5")
        assert shell.returncode == 5 and "echo" in shell.stdout, shell.stderr
        inspected = on_swarm(running_lab, machines, "inspect", "web", "--json")
        assert inspected.returncode == 0, inspected.stderr
        assert any(i["name"] != "lo" and i["addresses"] for i in json.loads(inspected.stdout)["interfaces"])

    def test_pytest_runs_a_swarm_labs_checks(self, machines, running_lab):
        """`pytest lab.yaml` opens the same engine as the CLI: the Swarm the environment
        names, whose running lab it uses and leaves running."""
        env = {**os.environ, "LABCTL_ENGINE": "swarm", "LABCTL_CLUSTER": str(machines)}
        result = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-v", "-s",
                                 str(running_lab)], capture_output=True, text=True, timeout=300,
                                env=env, cwd=running_lab.parent)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
        assert "12 passed" in result.stdout
        assert "already running; it is left running" in result.stderr + result.stdout
        status = on_swarm(running_lab, machines, "status", "--json")
        assert {s["name"] for s in json.loads(status.stdout) if s["role"] == "host"} == set(PLACEMENT)

    def test_impairments_and_faults_reach_hosts_on_other_machines(self, machines, running_lab, local_engine):
        topology = read_lab(running_lab, EngineChoice(kind="swarm")).topology
        engine = SwarmEngine.for_cluster(cluster.load_cluster(machines), local_engine)
        try:
            def echo_rtt() -> float:
                """alice (M1) to echo (M3) and back, median of 20 exchanges."""
                bind_addresses(topology, engine)
                echo = str(topology.hosts["echo"].address_on("dmz"))
                result = engine.exec(topology, "alice", ["python3", f"{SERVICES_PATH}/measure.py", "rtt", echo, "7", "20"])
                assert result.exit_code == 0, result.stderr.decode()
                return statistics.median(json.loads(result.stdout))

            # A delay on echo's interface, applied by a sidecar on echo's machine.
            baseline = echo_rtt()
            assert on_swarm(running_lab, machines, "impair", "echo", "--delay", "40ms").returncode == 0
            added = echo_rtt() - baseline
            assert abs(added - 0.040) <= 0.2 * 0.040, f"declared 40ms, measured {added * 1000:.1f}ms"
            assert on_swarm(running_lab, machines, "impair", "--clear").returncode == 0
            assert echo_rtt() - baseline < 0.010

            # A partition between machines: alice (M1) loses web (M2); bob, beside alice, does not.
            assert on_swarm(running_lab, machines, "partition", "alice", "--", "web").returncode == 0
            results = passed(check(running_lab, machines, "web health via the router", "http post is echoed"))
            assert results == {"web health via the router": False, "http post is echoed": True}
            assert on_swarm(running_lab, machines, "heal").returncode == 0
            assert all(passed(check(running_lab, machines, "web health via the router")).values())

            # A stopped host comes back as a new task on its machine, reachable at its new address.
            assert on_swarm(running_lab, machines, "stop", "echo").returncode == 0
            status = on_swarm(running_lab, machines, "status").stdout
            assert re.search(rf"echo\s+{M3}\s+exited", status), status
            assert passed(check(running_lab, machines, "tcp echo")) == {"tcp echo": False}
            started = on_swarm(running_lab, machines, "start", "echo")
            assert started.returncode == 0, started.stderr
            assert re.search(rf"echo\s+{M3}\s+running", on_swarm(running_lab, machines, "status").stdout)
            assert passed(check(running_lab, machines, "tcp echo")) == {"tcp echo": True}

            # The router loses the dmz, then gets it back with its routes.
            assert on_swarm(running_lab, machines, "disconnect", "gw:dmz").returncode == 0
            status = on_swarm(running_lab, machines, "status").stdout
            assert re.search(r"gw\s.*disconnected from dmz", status), status
            assert passed(check(running_lab, machines, "web health via the router")) == {"web health via the router": False}
            assert on_swarm(running_lab, machines, "reconnect", "gw:dmz").returncode == 0
            assert all(passed(check(running_lab, machines)).values())
        finally:
            engine.close()


    def test_a_stopped_machine_fails_only_the_checks_that_need_it(self, machines, running_lab, local_engine):
        local_engine.containers.get(M3).stop(timeout=5)
        results = check(running_lab, machines)
        needs_echo = {"tcp echo", "udp echo", "closed port is refused", "the tcp echo crosses the dmz"}
        for name, result in results.items():
            if name in needs_echo:
                assert not result["passed"], name
                assert f"machine '{M3}'" in result["reason"] and "does not answer" in result["reason"], result
            else:
                assert result["passed"], result
        status = on_swarm(running_lab, machines, "status")
        assert re.search(rf"echo\s+{M3}\s+unreachable", status.stdout), status.stdout


def test_compose_on_an_engine_over_ssh(machines, tmp_path):
    """The default lab with Compose on one machine reached over SSH (`--engine ssh://`),
    with the key and host key from the user's ~/.ssh, as any ssh user has them."""
    machine = cluster.load_cluster(machines).machines[M2]
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "known_hosts").write_text((machines.parent / "known_hosts").read_text())
    (home / ".ssh" / "config").write_text(f"Host {machine.target.host}\n  IdentityFile {machine.target.key}\n")
    folder = tmp_path / "lab"
    folder.mkdir()
    (folder / "lab.yaml").write_text(without_ipv6((REPO / "lab.yaml").read_text()).replace("name: campus", "name: mh-remote"))

    def remote(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "labctl", "--engine", f"ssh://root@{machine.target.host}",
                               "-f", str(folder / "lab.yaml"), *args], capture_output=True, text=True,
                              timeout=300, env={**os.environ, "HOME": str(home)})
    up = remote("up")
    try:
        assert up.returncode == 0, up.stderr
        document = (folder / "compose" / "mh-remote.yaml").read_text()
        assert "volumes" not in document and "BEGIN PRIVATE KEY" not in document
        checked = remote("check", "--json")
        assert checked.returncode == 0, checked.stdout
        assert len(json.loads(checked.stdout)["checks"]) == 12
        assert remote("stop", "echo").returncode == 0
        assert re.search(r"echo\s+exited", remote("status").stdout)
        assert remote("heal").returncode == 0
        shell = remote("shell", "alice", "--", "sh", "-c", "hostname; exit 6")
        assert shell.returncode == 6 and "alice" in shell.stdout, shell.stderr
        capture = remote("capture", "dmz", "--for", "3s", "-w", str(tmp_path / "dmz.pcap"))
        assert capture.returncode == 0, capture.stderr
        assert (tmp_path / "dmz.pcap").read_bytes()[:4] in (b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4")
    finally:
        down = remote("down")
        assert down.returncode == 0, down.stderr
    assert leftovers(machines, "mh-remote") == {}


def test_an_engine_behind_a_jump_host(machines, tmp_path):
    """ProxyJump in an ssh config: the engine on M1 reached through M2's sshd, both host keys
    verified, and the API version negotiated with M1's engine over the tunnel."""
    found = cluster.load_cluster(machines).machines
    behind, jump = found[M1].target, found[M2].target
    config = tmp_path / "config"
    config.write_text(f"Host behind\n  HostName {behind.host}\n  User root\n  IdentityFile {behind.key}\n"
                      "  ProxyJump jump\n"
                      f"Host jump\n  HostName {jump.host}\n  User root\n  IdentityFile {jump.key}\n")
    client = remote_client(SshTarget("behind", known_hosts=machines.parent / "known_hosts"), config_path=config)
    try:
        assert client.info()["Name"] == M1
        assert client.api.api_version == client.version()["ApiVersion"]
        adapter = client.api._custom_adapter
        (hop,) = adapter._jumps
        assert hop.get_transport().getpeername()[0] == jump.host
        assert isinstance(adapter.ssh_client.get_transport().sock, paramiko.Channel)
    finally:
        client.close()


GRADED_LAB = """
name: mh-grade
networks:
  room: {subnet: 10.233.1.0/24}
hosts:
  server:
    networks: [room]
    files: ["./submission/server.py:/exercise/server.py"]
    command: python3 -u /exercise/server.py
    ready: {tcp: 9000}
  student: {networks: [room]}
checks:
  - name: upper case
    from: student
    to: server:9000
    tcp: {send: "hi\\n", expect: "HI\\n"}
"""
SERVER = """
import socket
listener = socket.create_server(("", 9000))
while True:
    conn, _ = listener.accept()
    with conn:
        data = conn.recv(100)
        conn.sendall(data.{}())
"""


def test_a_class_is_graded_on_the_swarm_two_at_a_time(machines, tmp_path):
    folder = tmp_path / "grading"
    for where, program in (("submission", "upper"), ("class/ada", "upper"), ("class/bea", "lower")):
        (folder / where).mkdir(parents=True)
        (folder / where / "server.py").write_text(SERVER.format(program))
    (folder / "lab.yaml").write_text(GRADED_LAB)
    graded = on_swarm(folder / "lab.yaml", machines, "grade", str(folder / "class"), "--parallel", "2",
                      "--csv", str(folder / "grades.csv"), "--html", str(folder / "grades.html"))
    assert graded.returncode == 0, graded.stderr
    rows = {row["student"]: row for row in csv.DictReader((folder / "grades.csv").open())}
    assert {name: (row["score"], row["points"]) for name, row in rows.items()} == {"ada": ("1", "1"), "bea": ("0", "1")}
    assert rows["bea"]["failed checks"].startswith("upper case: expected exactly 'HI\\n', got 'hi\\n'"), rows
    # Four hosts in two instances at once, spread by the Swarm: more than one machine ran them.
    assert len({machine for row in rows.values() for machine in row["machines"].split()}) >= 2, rows
    for instance in ("mh-grade-grade1", "mh-grade-grade2"):
        assert leftovers(machines, instance) == {}, instance   # the lab image they shared included


def test_cluster_down_takes_every_machine_out_of_the_swarm(machines):
    result = labctl("--cluster", str(machines), "cluster", "down")
    assert result.returncode == 0, result.stderr
    status = json.loads(labctl("--cluster", str(machines), "cluster", "status", "--json").stdout)
    assert {row["state"] for row in status} == {"not in a swarm"}
