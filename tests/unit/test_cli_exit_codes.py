"""Each kind of outcome has its own exit code, from the one table in labctl.errors: checks
that fail (1), a wrong command line (2), a wrong lab file (3), an engine that does not
answer (4), a bug (5), an interrupt (130). Run through `labctl.cli.main.main`; no engine is
touched: where one is asked for, DOCKER_HOST names a socket that does not exist."""

from __future__ import annotations

import dataclasses
import json
import shutil

import pytest

from labctl import errors
from labctl.checks.result import CheckResult
from labctl.cli import verbs
from labctl.cli.main import main
from labctl.errors import EXIT_CODES, ExitCode
from labctl.ops import lifecycle, listing, status as lab_status

from ..conftest import REPO


@pytest.fixture
def lab(tmp_path, monkeypatch):
    """The default lab in a folder of its own, which is the working folder; no engine answers."""
    path = tmp_path / "lab.yaml"
    shutil.copy(REPO / "lab.yaml", path)
    monkeypatch.chdir(tmp_path)
    for variable in ("LABCTL_FILE", "LABCTL_ENGINE", "LABCTL_DEBUG", "DOCKER_CONTEXT"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-engine-here.sock")
    return path


def code_of(capsys, *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    return code, capsys.readouterr().err


def test_one_table_of_distinct_codes():
    assert all(isinstance(item, ExitCode) and item.name and item.meaning for item in EXIT_CODES)
    assert len({item.code for item in EXIT_CODES}) == len({item.name for item in EXIT_CODES}) == len(EXIT_CODES)
    assert [item.code for item in EXIT_CODES] == [errors.OK, errors.FAILED, errors.USAGE, errors.LAB_FILE,
                                                  errors.ENGINE, errors.INTERNAL, errors.INTERRUPTED,
                                                  errors.OUTPUT_CLOSED] == [0, 1, 2, 3, 4, 5, 130, 141]
    with pytest.raises(dataclasses.FrozenInstanceError):
        EXIT_CODES[0].code = 9   # type: ignore[misc]


def test_ok(lab, capsys):
    assert code_of(capsys, "validate") == (0, "")


def test_usage(lab, capsys):
    code, said = code_of(capsys, "frobnicate")
    assert code == 2 and "invalid choice: 'frobnicate'" in said
    assert code_of(capsys, "check", "--format", "nope")[0] == 2
    assert code_of(capsys, "up", "--timeout", "soon")[0] == 2
    code, said = code_of(capsys, "run", "no-such-scenario")        # what the lab does not have
    assert code == 2 and said.strip() == ("labctl: error: no scenario named 'no-such-scenario'; scenarios: "
                                          "udp-loses-tcp-delivers, partition")
    code, said = code_of(capsys, "--engine", "warp", "validate")
    assert code == 2 and "--engine warp: expected one of" in said


def test_a_bad_lab_file(lab, capsys):
    lab.write_text(lab.read_text().replace("subnet: 10.10.1.0/24", "subnet: 10.10.1.0/33"))
    code, said = code_of(capsys, "validate")
    assert code == 3 and said.startswith("labctl: error: lab.yaml:9: networks.lan.subnet:") and said.count("\n") == 1
    assert code_of(capsys, "up")[0] == 3          # before any engine is asked
    assert code_of(capsys, "validate", "missing.yaml")[0] == 3


def test_an_engine_that_does_not_answer(lab, capsys):
    for argv in (["status"], ["ls"], ["check", "tcp echo"], ["down", "some-lab"]):
        code, said = code_of(capsys, *argv)
        assert code == 4 and said.startswith("labctl: error: no Docker engine answers"), (argv, said)


def test_an_internal_error(lab, capsys, monkeypatch):
    def broken(args):
        raise KeyError("a bug")
    monkeypatch.setattr(verbs, "validate", broken)
    code, said = code_of(capsys, "validate")
    assert code == 5 and said.startswith("labctl: error: internal error: KeyError: 'a bug' (a bug in labctl;")
    monkeypatch.setenv("LABCTL_DEBUG", "1")
    with pytest.raises(KeyError):
        main(["validate"])


def test_an_interrupt(lab, capsys, monkeypatch):
    def interrupted(args):
        raise KeyboardInterrupt
    monkeypatch.setattr(verbs, "up", interrupted)
    assert code_of(capsys, "up") == (130, "labctl: interrupted\n")


class Engine:
    """What `check` asks of an engine besides running the checks: none is needed here."""

    def labs_from(self, source):
        return set()


def result(name: str, passed: bool) -> CheckResult:
    return CheckResult(name, "alice", "web", 80, "tcp", passed, 1.0, "" if passed else "refused")


@pytest.mark.parametrize("outcomes, expected", [((True, True), 0), ((True, False), 1)])
def test_checks_that_fail(lab, capsys, monkeypatch, outcomes, expected):
    monkeypatch.setattr(verbs, "open_lab", lambda args: (verbs.load(args), Engine()))
    monkeypatch.setattr(lifecycle, "check", lambda lab, engine, names, pattern: (
        [result(f"check {n}", passed) for n, passed in enumerate(outcomes)], 0.5))
    assert main(["check", "--json"]) == expected
    assert [entry["passed"] for entry in json.loads(capsys.readouterr().out)["checks"]] == list(outcomes)


@pytest.mark.parametrize("running, state, health, expected", [
    (True, "running", "healthy", 0), (True, "paused", None, 0),    # a fault labctl made: not trouble
    (True, "running", "unhealthy", 1), (True, "missing", None, 1), (False, "missing", None, 1)])
def test_status_says_whether_the_lab_is_ready(lab, capsys, monkeypatch, running, state, health, expected):
    report = lab_status.LabStatus("campus", running, False,
                                  hosts=[lab_status.HostRow("web", state, health, {}, [], [])])
    monkeypatch.setattr(verbs, "open_lab", lambda args: (verbs.load(args), Engine()))
    monkeypatch.setattr(lab_status, "lab_status", lambda topology, engine: report)
    assert main(["status"]) == expected


def test_ls_says_in_one_line_that_no_lab_runs(lab, capsys, monkeypatch):
    monkeypatch.setattr(listing, "running_labs", lambda choice: [])
    assert main(["ls"]) == 0
    assert capsys.readouterr().out == "no lab runs on the compose engine\n"
    assert main(["ls", "--json"]) == 0 and json.loads(capsys.readouterr().out) == []
    rows = [listing.RunningLab("campus", "/labs/campus", "compose", 4, 5, 7300.0)]
    monkeypatch.setattr(listing, "running_labs", lambda choice: rows)
    assert main(["ls"]) == 0
    assert capsys.readouterr().out.split("\n")[1].split() == ["campus", "/labs/campus", "compose", "4/5", "2h"]


def test_down_tells_a_name_from_a_lab_file(lab, capsys, monkeypatch):
    asked = []
    monkeypatch.setattr(listing, "down_named", lambda name, choice, progress, wait: asked.append(name) or {
        "containers": 2, "networks": 1, "volumes": 0})
    assert main(["down", "old-lab"]) == 0 and asked == ["old-lab"]
    assert "lab 'old-lab' is down: removed 2 containers, 1 network, 0 volumes" in capsys.readouterr().err
    code, said = code_of(capsys, "-f", "lab.yaml", "down", "old-lab")
    assert code == 2 and "takes no lab file" in said
    # A file that does not exist, but is named as one: the lab file, so a bad one (3), not a name.
    assert code_of(capsys, "down", "gone.yaml")[0] == 3 and asked == ["old-lab"]
