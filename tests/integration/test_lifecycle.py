"""Failure paths leave nothing behind; the rendered Compose file runs without labctl;
a user's own program is a host like any other."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap

import pytest

from labctl.engines.compose import compose_command
from labctl.errors import EngineError
from labctl.ops import lifecycle
from labctl.render.lab import render_lab

from .conftest import default_lab_copy, leftovers, load, quiet, run_cli

BASE = """
name: {name}
networks:
  net: {{subnet: 10.{octet}.0.0/24}}
hosts:
  server: {{networks: [net], services: [{{tcp-echo: {{port: 7}}}}]}}
"""


def write(folder, text: str):
    path = folder / "lab.yaml"
    path.write_text(textwrap.dedent(text).lstrip())
    return path


def test_failed_up_names_the_host_and_leaves_nothing(engine, image, tmp_path):
    path = write(tmp_path, BASE.format(name="itest-fail", octet=232) +
                 "  crasher: {networks: [net], command: \"sh -c 'echo giving up; exit 3'\"}\n")
    topology = load(path).topology
    with pytest.raises(EngineError) as caught:
        lifecycle.up(topology, engine, quiet, timeout=60)
    assert "host 'crasher' exited with code 3: giving up" in str(caught.value)
    assert leftovers(engine, topology, image) == {}


def test_missing_image_fails_cleanly_from_the_cli(engine, image, tmp_path):
    path = write(tmp_path, BASE.format(name="itest-noimage", octet=233) +
                 "  ghost: {networks: [net], image: 'labctl-test-absent:1', command: 'true'}\n")
    result = run_cli("-f", str(path), "up", "--timeout", "60")
    assert result.returncode == 4   # the engine refused (labctl.errors.ENGINE)
    errors = [line for line in result.stderr.splitlines() if line.startswith("labctl: error:")]
    assert len(errors) == 1 and "image labctl-test-absent:1 of host 'ghost' is not on the engine" in errors[0], errors
    assert "Traceback" not in result.stderr
    assert leftovers(engine, load(path).topology, image) == {}


def test_interrupted_up_leaves_nothing(engine, image, tmp_path):
    # 'never' never becomes ready (its probe fails), so up waits until the interrupt arrives.
    path = write(tmp_path, BASE.format(name="itest-interrupt", octet=234) +
                 "  never: {networks: [net], command: 'sleep infinity', ready: {command: 'false'}}\n")
    topology = load(path).topology
    process = subprocess.Popen([sys.executable, "-m", "labctl", "-f", str(path), "up"],
                               stderr=subprocess.PIPE, text=True)
    assert process.stderr is not None
    for line in process.stderr:  # the readiness report means containers exist
        if "waiting for never" in line:
            break
    else:
        pytest.fail(f"up ended before waiting: {process.wait()}")
    assert leftovers(engine, topology, image).get("containers")
    process.send_signal(signal.SIGINT)
    rest = process.stderr.read()
    assert process.wait(timeout=120) == 130, rest
    assert "interrupted: removing what was created" in rest
    assert leftovers(engine, topology, image) == {}


def test_rendered_compose_file_runs_without_labctl(engine, image, tmp_path):
    path = default_lab_copy(tmp_path, "itest-standalone", 235)
    lab = load(path)
    topology = lab.topology
    document = render_lab(topology, image)
    compose = compose_command()
    assert compose is not None
    try:
        result = subprocess.run([*compose, "-f", str(document), "up", "-d"], capture_output=True,
                                text=True, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        engine.wait_ready(topology, quiet, timeout=60)
        results, _ = lifecycle.check(lab, engine)
        assert all(r.passed for r in results), [(r.name, r.reason) for r in results if not r.passed]
    finally:
        lifecycle.down(topology, engine, quiet)
    assert leftovers(engine, topology, image) == {}


STUDENT_SERVER = '''
import socket
server = socket.create_server(("0.0.0.0", 9000))
while True:
    conn, peer = server.accept()
    with conn:
        data = conn.makefile("rb").readline()
        conn.sendall(data.upper())
        print(f"served {peer[0]}", flush=True)
'''


def test_a_students_program_is_checked_like_a_built_in_service(engine, image, tmp_path):
    (tmp_path / "server.py").write_text(STUDENT_SERVER)
    path = write(tmp_path, """
        name: itest-student
        networks:
          net: {subnet: 10.236.0.0/24}
        hosts:
          student:
            networks: [net]
            files: ["./server.py:/exercise/server.py"]
            command: python3 -u /exercise/server.py
            ready: {tcp: 9000}
          grader: {networks: [net]}
        checks:
          - {name: shouts back, from: grader, to: student:9000, tcp: {send: "quiet\\n", expect: "QUIET\\n"}}
          - {name: nothing on 9001, from: grader, to: student:9001, tcp: {expect_error: refused}}
        """)
    lab = load(path)
    topology = lab.topology
    try:
        lifecycle.up(topology, engine, quiet, timeout=60)
        results, _ = lifecycle.check(lab, engine)
        assert all(r.passed for r in results), [(r.name, r.reason) for r in results]
        grader = str(topology.hosts["grader"].address_on("net"))
        logs = b"".join(engine.logs(topology, "student")).decode()
        assert f"served {grader}" in logs
    finally:
        lifecycle.down(topology, engine, quiet)
    assert leftovers(engine, topology, image) == {}


def test_a_host_built_from_the_lab_folder(engine, image, tmp_path):
    (tmp_path / "srv").mkdir()
    (tmp_path / "srv" / "Dockerfile").write_text(f"FROM {image}\nRUN echo built-here > /built.txt\n")
    path = write(tmp_path, """
        name: itest-build
        networks: {net: {subnet: 10.237.0.0/24}}
        hosts:
          custom: {networks: [net], build: ./srv, command: sleep infinity}
          peer: {networks: [net], services: [{udp-echo: {port: 5000}}]}
        checks:
          - {name: built host reaches peer, from: custom, to: peer:5000, udp: {send: hi, expect: hi}}
        """)
    lab = load(path)
    topology = lab.topology
    try:
        lifecycle.up(topology, engine, quiet, timeout=120)
        assert engine.exec(topology, "custom", ["cat", "/built.txt"]).stdout == b"built-here\n"
        results, _ = lifecycle.check(lab, engine)
        assert all(r.passed for r in results), [(r.name, r.reason) for r in results]
    finally:
        lifecycle.down(topology, engine, quiet)
    assert leftovers(engine, topology, image) == {}


def test_a_lab_labctl_brings_up_is_one_compose_knows(engine, image, tmp_path):
    """labctl creates the containers itself, through the API, all at once; they carry
    Compose's names and labels, so `docker compose` alone lists and removes them. A second
    `up` of the unchanged lab keeps every container as it is."""
    path = write(tmp_path, BASE.format(name="itest-known", octet=237) +
                 "  client: {networks: [net]}\n")
    topology = load(path).topology
    try:
        document = lifecycle.up(topology, engine, quiet, timeout=60).document
        compose = compose_command()
        assert compose is not None
        before = {c["Id"] for c in engine.client.api.containers(filters={"label": "io.labctl.lab=itest-known"})}
        assert len(before) == 2
        lifecycle.up(topology, engine, quiet, timeout=60)
        after = {c["Id"] for c in engine.client.api.containers(filters={"label": "io.labctl.lab=itest-known"})}
        assert after == before
        listed = subprocess.run([*compose, "-f", str(document), "ps", "--services"], capture_output=True,
                                text=True, cwd=tmp_path)
        assert listed.returncode == 0 and set(listed.stdout.split()) == {"server", "client"}, listed
        gone = subprocess.run([*compose, "-f", str(document), "down", "-t", "1"], capture_output=True,
                              text=True, cwd=tmp_path)
        assert gone.returncode == 0, gone.stderr
        assert not engine.client.api.containers(all=True, filters={"label": "io.labctl.lab=itest-known"})
        assert not engine.client.api.networks(filters={"label": "io.labctl.lab=itest-known"})
    finally:
        lifecycle.down(topology, engine, quiet)
    assert leftovers(engine, topology, image) == {}
