"""The pytest plugin where no engine is needed: what loading it costs, the `lab` fixture's
scope, which files it collects, what it exports, and the instances xdist workers get."""

from __future__ import annotations

import fcntl
import os
import textwrap
import typing
from pathlib import Path

import pytest

import labctl.pytest_plugin as plugin
from labctl.engines.factory import read_lab
from labctl.errors import LabError
from labctl.ops import lock
from labctl.testing import MAX_WORKERS, CheckResult, RunningLab, WorkerTurns, worker_instance, worker_slot

pytest_plugins = ["pytester"]

LAB = """
name: {name}
networks:
  lan: {{subnet: 10.{octet}.1.0/24}}
hosts:
  alice: {{networks: [lan]}}
  echo: {{networks: [lan], services: [{{tcp-echo: {{port: 7}}}}]}}
checks:
  - {{name: tcp echo, from: alice, to: echo:7, tcp: {{send: "hi\\n", expect: "hi\\n"}}}}
"""


# In-process runs re-import what they load; hypothesis' plugin alone would cost 1.5 s each.
QUICK = ("-p", "no:hypothesispytest", "-p", "no:cacheprovider")


def lab_text(name: str = "unit-plugin", octet: int = 160) -> str:
    return textwrap.dedent(LAB.format(name=name, octet=octet)).lstrip()


def test_a_run_that_uses_no_lab_loads_none_of_its_machinery(pytester: pytest.Pytester) -> None:
    # A subprocess: an in-process run shares this one's sys.modules.
    pytester.makefile(".yaml", notes="{not: a lab, [at all")
    pytester.makepyfile(test_trivial="""
        import sys

        def test_nothing_heavy_is_loaded():
            assert "labctl.pytest_plugin" in sys.modules   # the plugin did load
            heavy = {"docker", "paramiko", "cryptography", "yaml", "labctl.testing", "labctl.ops"}
            assert not heavy & set(sys.modules)
        """)
    result = pytester.runpytest_subprocess(*QUICK)
    result.assert_outcomes(passed=1)


def _scope_shown(pytester: pytest.Pytester, *args: str) -> str:
    result = pytester.runpytest(*QUICK, "--fixtures", *args)
    [line] = [line for line in result.outlines if line.startswith("lab ")]
    return line


@pytest.mark.parametrize(("ini", "args", "scope"), [
    (None, (), "[session scope]"),
    (None, ("--lab-scope", "module"), "[module scope]"),
    ("class", (), "[class scope]"),
    ("module", ("--lab-scope", "package"), "[package scope]"),
])
def test_the_lab_fixture_takes_the_scope_the_run_gives(pytester: pytest.Pytester, ini: str | None,
                                                       args: tuple[str, ...], scope: str) -> None:
    if ini:
        pytester.makeini(f"[pytest]\nlab_scope = {ini}\n")
    assert scope in _scope_shown(pytester, *args)


def test_a_function_scoped_lab_is_shown_without_a_scope(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nlab_scope = function\n")
    assert "scope]" not in _scope_shown(pytester)


def test_an_unknown_scope_is_refused_in_one_line(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nlab_scope = forever\n")
    result = pytester.runpytest(*QUICK)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*ini lab_scope = 'forever': expected one of session, package, module, class, function"])
    result = pytester.runpytest(*QUICK, "--lab-scope", "forever")
    assert result.ret == pytest.ExitCode.USAGE_ERROR


def test_only_named_lab_files_and_lab_yaml_endings_are_collected(pytester: pytest.Pytester) -> None:
    (pytester.path / "lab.yaml").write_text(lab_text())
    (pytester.path / "second.lab.yaml").write_text(lab_text("unit-plugin-two", 161))
    (pytester.path / "settings.yaml").write_text("{not: a lab, [at all")
    result = pytester.runpytest(*QUICK, "--collect-only", "-q")
    assert result.ret == pytest.ExitCode.OK
    assert "second.lab.yaml::tcp echo" in result.outlines
    assert not [line for line in result.outlines if line.startswith(("lab.yaml", "settings.yaml"))]
    result = pytester.runpytest(*QUICK, "--collect-only", "-q", "lab.yaml")
    assert "lab.yaml::tcp echo" in result.outlines


def test_a_bad_lab_file_is_a_one_line_collection_error(pytester: pytest.Pytester) -> None:
    (pytester.path / "broken.lab.yaml").write_text(lab_text().replace("to: echo:7", "to: nowhere:7"))
    result = pytester.runpytest(*QUICK, "--collect-only", "-q")
    assert result.ret == pytest.ExitCode.INTERRUPTED   # collection errors stop the run
    said = result.stdout.str()
    assert "broken.lab.yaml:" in said and "nowhere" in said
    assert "Traceback" not in said


def test_the_running_lab_and_check_result_are_exported_and_typed() -> None:
    assert plugin.RunningLab is RunningLab and plugin.CheckResult is CheckResult
    from labctl.pytest_plugin import RunningLab as imported   # the module's __getattr__
    assert imported is RunningLab
    with pytest.raises(AttributeError):
        getattr(plugin, "NoSuchThing")
    hints = typing.get_type_hints(RunningLab)
    assert {"lab", "topology", "engine", "image"} <= set(hints)
    public = [name for name in vars(RunningLab) if not name.startswith("_")]
    assert {"hosts", "name", "file", "exec", "check", "probe", "run", "transcript"} <= set(public)
    for name in public:
        member = vars(RunningLab)[name]
        function = member.fget if isinstance(member, property) else member
        assert function.__doc__, f"RunningLab.{name} has no docstring"
        assert "return" in typing.get_type_hints(function), f"RunningLab.{name} has no return type"


def test_each_xdist_worker_gets_an_instance_of_its_own(tmp_path: Path) -> None:
    (tmp_path / "lab.yaml").write_text(lab_text("unit-plugin", 160))
    labs = {worker: read_lab(tmp_path / "lab.yaml") for worker in ("gw0", "gw1")}
    for worker, lab in labs.items():
        worker_instance(lab, worker)
    first, second = labs["gw0"].topology, labs["gw1"].topology
    assert (first.name, second.name) == ("unit-plugin-gw0", "unit-plugin-gw1")
    assert str(first.networks["lan"].subnet) == "10.153.1.0/24"     # 160 - 7
    assert str(second.networks["lan"].subnet) == "10.146.1.0/24"    # 160 - 14
    assert str(first.hosts["alice"].address_on("lan")).startswith("10.153.1.")
    assert first.state_folder != second.state_folder and first.project != second.project


def test_worker_slots_never_meet_the_slots_of_grade() -> None:
    # relocate() moves the second octet by 7*slot (mod 256); `labctl grade --parallel K`
    # takes slots 1..K.
    grade = {7 * slot % 256 for slot in range(1, MAX_WORKERS + 1)}
    workers = [7 * worker_slot(f"gw{index}") % 256 for index in range(MAX_WORKERS)]
    assert len(set(workers)) == len(workers) and 0 not in workers
    assert not grade & set(workers)
    for wrong in (f"gw{MAX_WORKERS}", "master", "gw-1"):
        with pytest.raises(LabError):
            worker_slot(wrong)


def test_a_lab_that_cannot_move_says_why_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "lab.yaml").write_text(lab_text().replace("10.160.1.0/24", "192.168.160.0/24"))
    with pytest.raises(LabError) as caught:
        worker_instance(read_lab(tmp_path / "lab.yaml"), "gw0")
    assert "pytest-xdist" in str(caught.value) and "192.168.160" in str(caught.value)
    assert "\n" not in str(caught.value)


def _can_lock(path: Path, how: int) -> bool:
    descriptor = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(descriptor, how | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(descriptor)


def test_workers_change_labs_alone_and_check_side_by_side(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lock, "FOLDER", tmp_path / "locks")
    turns = WorkerTurns("engine-id")
    with turns.check(), turns.check():          # two workers' checks at once
        assert not _can_lock(turns.main, fcntl.LOCK_EX)    # no change meanwhile
        assert _can_lock(turns.gate, fcntl.LOCK_EX)        # the gate is not kept
    with turns.change():
        assert not _can_lock(turns.main, fcntl.LOCK_SH)    # no check meanwhile
    assert _can_lock(turns.main, fcntl.LOCK_EX)
    assert WorkerTurns("another-engine").main != turns.main
