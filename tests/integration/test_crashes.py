"""labctl under faults of its own: killed scenarios, interrupted and concurrent `up`s,
killed `up`s, helpers removed by hand, a pytest run killed outright. Each ends with nothing
left in force silently and nothing left behind once `down` runs.

Every wait here is on a signal: a line labctl prints, a process ending; the one bounded
poll waits for a reaper in another process to finish."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from labctl.names import LAB_LABEL, ROLE_LABEL

from .conftest import default_lab_copy, leftovers, load

pytestmark = pytest.mark.integration


def start(*args: str, cwd: Path, **options) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "labctl", *args], cwd=cwd, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **options)


def cli(*args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "labctl", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout)


def read_until(stream, words: str, limit: int = 400) -> str:
    """Lines of `stream` up to the first holding `words` (the signal), or a failure."""
    seen = []
    for _ in range(limit):
        line = stream.readline()
        if not line:
            break
        seen.append(line)
        if words in line:
            return "".join(seen)
    pytest.fail(f"never saw {words!r}; saw:\n{''.join(seen)[-2000:]}")


@pytest.fixture
def crash_lab(tmp_path, engine, image):
    path = default_lab_copy(tmp_path, "itest-crash", 247)
    lab = load(path)
    yield lab
    cli("down", cwd=tmp_path)
    assert leftovers(engine, lab.topology, image) == {}


def test_a_killed_scenario_leaves_its_partition_named_and_heal_clears_it(crash_lab, engine, image):
    folder = crash_lab.topology.folder
    assert cli("up", cwd=folder).returncode == 0
    run = start("run", "partition", cwd=folder)
    read_until(run.stdout, "ok   partition")           # the partition is in force
    run.send_signal(signal.SIGKILL)
    run.wait(timeout=30)
    checked = cli("check", "web health via the router", cwd=folder)
    assert checked.returncode == 1
    assert "partition alice -- web left by an interrupted run of 'partition'" in checked.stderr
    assert "partition alice -- web is in force" in checked.stdout     # in the check's own reason
    status = cli("status", cwd=folder)
    assert "left behind: partition alice -- web" in status.stdout
    healed = cli("heal", cwd=folder)
    assert healed.returncode == 0 and "partition alice -- web" in healed.stderr
    assert cli("check", cwd=folder).returncode == 0
    assert "left behind" not in cli("status", cwd=folder).stdout


def test_a_run_after_a_killed_one_restores_the_lab_as_declared(crash_lab):
    folder = crash_lab.topology.folder
    assert cli("up", cwd=folder).returncode == 0
    run = start("run", "udp-loses-tcp-delivers", cwd=folder)
    read_until(run.stdout, "ok   impair")               # 20% loss is in force
    run.send_signal(signal.SIGKILL)
    run.wait(timeout=30)
    complete = cli("run", "partition", cwd=folder)
    assert "scenario 'partition':" in complete.stdout, complete.stdout + complete.stderr
    assert "left by an interrupted run of 'udp-loses-tcp-delivers'" in complete.stderr
    assert "has no impairments" in cli("impair", "--show", cwd=folder).stdout


def test_an_interrupted_second_up_leaves_the_running_lab_running(crash_lab):
    folder = crash_lab.topology.folder
    assert cli("up", cwd=folder).returncode == 0
    again = start("up", cwd=folder)
    read_until(again.stderr, "labctl: ")                 # it has begun
    again.send_signal(signal.SIGINT)
    again.wait(timeout=120)
    checked = cli("check", cwd=folder)
    assert checked.returncode == 0, checked.stdout


@pytest.mark.parametrize("moment", ["image", "starting", "ready:"])
def test_up_killed_at_any_moment_then_down_leaves_nothing(tmp_path, engine, image, moment):
    path = default_lab_copy(tmp_path, "itest-killed", 244)
    lab = load(path)
    up = start("up", cwd=tmp_path)
    read_until(up.stderr, moment)
    up.send_signal(signal.SIGKILL)
    up.wait(timeout=30)
    down = cli("down", cwd=tmp_path)
    assert down.returncode == 0, down.stderr
    assert leftovers(engine, lab.topology, image) == {}


def test_a_helper_removed_by_hand_leaves_no_rule_behind(crash_lab, engine, image):
    folder = crash_lab.topology.folder
    assert cli("up", cwd=folder).returncode == 0
    fabric = engine.client.containers.list(all=True, filters={"label": [
        f"{LAB_LABEL}={crash_lab.name}", f"{ROLE_LABEL}=fabric"]})
    assert fabric, "the default lab routes, so it has a fabric helper"
    for container in fabric:
        container.remove(force=True)
    assert leftovers(engine, crash_lab.topology, image).get("forwarding rules")
    assert cli("down", cwd=folder).returncode == 0
    assert leftovers(engine, crash_lab.topology, image) == {}


def test_two_concurrent_ups_one_waits_and_the_lab_comes_up_once(crash_lab, engine):
    folder = crash_lab.topology.folder
    first, second = start("up", cwd=folder), start("up", cwd=folder)
    outcomes = [(process.wait(timeout=300), process.stderr.read()) for process in (first, second)]
    assert [code for code, _ in outcomes] == [0, 0], outcomes
    assert sum("is busy" in text for _, text in outcomes) == 1, outcomes
    hosts = engine.client.containers.list(filters={"label": [f"{LAB_LABEL}={crash_lab.name}",
                                                             f"{ROLE_LABEL}=host"]})
    assert sorted(c.labels["io.labctl.host"] for c in hosts) == sorted(crash_lab.topology.hosts)
    refused = cli("--no-wait", "down", cwd=folder)   # nobody holds it now: it goes through
    assert refused.returncode == 0


def test_no_wait_refuses_while_another_holds_the_lab(crash_lab):
    folder = crash_lab.topology.folder
    assert cli("up", cwd=folder).returncode == 0
    run = start("run", "partition", cwd=folder)
    read_until(run.stdout, "ok   partition")
    refused = cli("--no-wait", "heal", cwd=folder)
    assert refused.returncode == 2 and "is busy: 'run partition'" in refused.stderr
    assert run.wait(timeout=300) == 0


WAITING_TEST = """
import sys

def test_holds_the_lab(lab):
    print("LAB-READY", flush=True)
    sys.stdin.read()   # until the outer test kills this run
"""


def test_a_pytest_run_killed_outright_has_its_lab_reaped(tmp_path, engine, image):
    path = default_lab_copy(tmp_path, "itest-reaped", 245)
    lab = load(path)
    (tmp_path / "test_waiting.py").write_text(WAITING_TEST)
    run = subprocess.Popen([sys.executable, "-m", "pytest", "-s", "-p", "no:cacheprovider",
                            "test_waiting.py"], cwd=tmp_path, text=True, stdin=subprocess.PIPE,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           env={**os.environ, "PYTEST_ADDOPTS": ""})
    read_until(run.stdout, "LAB-READY")
    assert engine.client.containers.list(filters={"label": f"{LAB_LABEL}={lab.name}"})
    killed = time.monotonic()
    run.send_signal(signal.SIGKILL)
    run.wait(timeout=30)
    selector = {"label": f"{LAB_LABEL}={lab.name}"}
    while time.monotonic() - killed < 60 and (engine.client.api.containers(all=True, filters=selector)
                                              or engine.client.api.networks(filters=selector)):
        time.sleep(0.5)  # the reaper is another process: its work shows only on the engine
    assert leftovers(engine, lab.topology, image) == {}
    assert time.monotonic() - killed < 60
    log = (tmp_path / ".labctl" / lab.name / "reaper.log").read_text()
    assert "its owner is gone" in log and "is down" in log


def test_a_lab_renamed_while_up_is_named_by_the_next_command(crash_lab):
    folder = crash_lab.topology.folder
    assert cli("up", cwd=folder).returncode == 0
    file = folder / "lab.yaml"
    original = file.read_text()
    file.write_text(original.replace("name: itest-crash", "name: itest-renamed"))
    try:
        again = cli("up", cwd=folder)
        assert "lab 'itest-crash' from this same file is still running under its old name" in again.stderr
    finally:
        cli("down", cwd=folder)
        file.write_text(original)
