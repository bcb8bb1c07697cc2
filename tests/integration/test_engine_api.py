"""The API version labctl's client negotiates is the one the real engine reports, and doctor
reads the real engine into its one line of support."""

from __future__ import annotations

import shutil
import subprocess
import threading

import docker.errors

from labctl.engines.containers import EXEC_MARGIN
from labctl.engines.versions import engine_facts
from labctl.names import LAB_LABEL, ROLE_LABEL
from labctl.ops import doctor


def test_the_negotiated_version_is_what_the_engine_reports(engine):
    docker_cli = shutil.which("docker")
    assert docker_cli, "the docker command-line client is needed to ask the engine as a user would"
    reported = subprocess.run([docker_cli, "version", "--format", "{{.Server.APIVersion}}"],
                              capture_output=True, text=True, timeout=30)
    assert reported.returncode == 0, reported.stderr
    assert engine.client.api.api_version == reported.stdout.strip() == engine.client.version()["ApiVersion"]


def test_doctor_reads_the_engine_into_one_line(engine):
    facts = engine_facts(engine.client)
    finding = doctor.engine_support(engine.client)
    assert finding.detail.startswith(facts.summary + ": ") and "\n" not in finding.detail
    assert facts.version == engine.client.version()["Version"]


def test_a_helpers_exec_ends_when_its_container_is_removed_under_it(engine, image):
    # Docker 20.10 never closes an exec's stream when a container in the machine's process
    # table (as the routes admin helper is) is removed mid-exec: labctl's own execs must come
    # back all the same, not hang a run (a class's grading hung so at exit).
    api = engine.client.api
    container = api.create_container(
        image, ["sleep", "600"], labels={LAB_LABEL: "itest-exec-removed", ROLE_LABEL: "helper"},
        host_config=api.create_host_config(network_mode="none", pid_mode="host"))["Id"]
    try:
        api.start(container)
        outcome: list = []
        reader = threading.Thread(target=lambda: outcome.append(engine._exec_in(container, ["sleep", "600"], 5)),
                                  daemon=True)
        reader.start()
        while reader.is_alive() and not any(api.exec_inspect(exec_id).get("Pid")
                                            for exec_id in api.inspect_container(container).get("ExecIDs") or []):
            reader.join(0.05)
        assert reader.is_alive(), outcome   # the exec runs: now its container goes
        api.remove_container(container, force=True)
        reader.join(5 + EXEC_MARGIN + 60)
        assert not reader.is_alive(), "the exec's output was read past its bound"
        assert outcome[0].exit_code == -1 and b"gave up" in outcome[0].stderr, outcome
    finally:
        try:
            api.remove_container(container, force=True)
        except docker.errors.NotFound:
            pass
