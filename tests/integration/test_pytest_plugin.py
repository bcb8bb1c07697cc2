"""The pytest plugin, run as a user would run it: in a pytest of its own."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from xml.etree import ElementTree

from labctl.testing import worker_instance

from .conftest import default_lab_copy, leftovers, load


def pytest_in(folder, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-v", *args],
                          capture_output=True, text=True, cwd=folder, timeout=600)


def test_pytest_collects_each_check_of_a_lab_file(engine, image, tmp_path):
    path = default_lab_copy(tmp_path, "itest-collect", 239)
    path.write_text(path.read_text().replace('tcp: {send: "hello\\n", expect: "hello\\n"}',
                                             'tcp: {send: "hello\\n", expect: "HELLO\\n"}'))
    lab = load(path)
    result = pytest_in(tmp_path, "lab.yaml")
    assert result.returncode == 1, result.stdout
    # The wire check that watches the tcp echo fails with it, and says why.
    assert f"{len(lab.checks) - 2} passed" in result.stdout and "2 failed" in result.stdout
    assert "lab.yaml::tcp echo FAILED" in result.stdout
    assert "lab.yaml::the tcp echo crosses the dmz FAILED" in result.stdout
    assert "the traffic it watched failed: tcp echo" in result.stdout
    assert "alice → echo:7 tcp: expected exactly 'HELLO\\n', got 'hello\\n'" in result.stdout
    assert "lab.yaml::wrong CA is rejected PASSED" in result.stdout
    assert leftovers(engine, lab.topology, image) == {}


def test_the_lab_fixture_is_torn_down_after_ctrl_c(engine, image, tmp_path):
    path = default_lab_copy(tmp_path, "itest-fixture", 241)
    (tmp_path / "test_it.py").write_text(textwrap.dedent("""
        import os, signal

        def test_uses_the_lab(lab):
            assert lab.check("tcp echo").passed
            assert lab.exec("alice", "hostname").stdout == b"alice\\n"

        def test_interrupted(lab):
            os.kill(os.getpid(), signal.SIGINT)
        """))
    result = pytest_in(tmp_path, "test_it.py")
    assert "test_it.py::test_uses_the_lab[lab.yaml] PASSED" in result.stdout, result.stdout + result.stderr
    assert "KeyboardInterrupt" in result.stdout + result.stderr
    assert "removing" in result.stderr
    assert leftovers(engine, load(path).topology, image) == {}


# -- the fixture's scope, and pytest-xdist: tiny labs, of names and subnets of their own ----

TINY = """\
name: {name}
networks:
  lan: {{subnet: 10.{octet}.1.0/24}}
hosts:
  alice: {{networks: [lan]}}
  echo: {{networks: [lan], services: [{{tcp-echo: {{port: 7}}}}]}}
checks:
  - {{name: tcp echo, from: alice, to: echo:7, tcp: {{send: "hi\\n", expect: "hi\\n"}}}}
"""


def tiny_lab(folder, name: str, octet: int, checks: int = 1):
    """A two-host lab with `checks` tcp echo checks, as `folder`/lab.yaml."""
    folder.mkdir(parents=True, exist_ok=True)
    text = TINY.format(name=name, octet=octet)
    for number in range(2, checks + 1):
        text += f'  - {{name: tcp echo {number}, from: alice, to: echo:7, tcp: {{send: "{number}\\n", expect: "{number}\\n"}}}}\n'
    path = folder / "lab.yaml"
    path.write_text(text)
    return path


QUICK = ("-p", "no:hypothesispytest")   # its plugin costs each pytest (and xdist worker) 1.5 s


def write(folder, name: str, text: str) -> None:
    (folder / name).write_text(textwrap.dedent(text))


def test_a_session_fixture_of_the_user_uses_the_session_lab(engine, image, tmp_path):
    path = tiny_lab(tmp_path, "itest-plugin-session", 150)
    other = tiny_lab(tmp_path / "other", "itest-plugin-other", 153)
    write(tmp_path, "conftest.py", """
        import pytest

        @pytest.fixture(scope="session")
        def prepared(lab):
            assert lab.exec("alice", "echo ready > /tmp/prepared").exit_code == 0
            return lab
        """)
    write(tmp_path, "test_first.py", """
        def test_first(prepared, lab):
            assert prepared is lab
            assert lab.check("tcp echo").passed
        """)
    write(tmp_path, "test_second.py", """
        def test_second(prepared, lab):
            assert prepared is lab and lab.name == "itest-plugin-session"
            assert lab.exec("alice", "cat /tmp/prepared").stdout == b"ready\\n"
        """)
    write(other.parent, "test_other.py", """
        def test_wants_another_lab(lab):
            assert lab.name == "itest-plugin-other" and lab.check("tcp echo").passed
        """)
    result = pytest_in(tmp_path, *QUICK, "test_first.py", "other", "test_second.py")
    said = result.stdout + result.stderr
    assert "3 passed" in result.stdout, said
    # The lab file is the `lab` fixture's parameter: pytest runs the session lab's tests
    # together, then takes it down before the other lab comes up for its own test.
    order = [line.split("::")[1].split()[0] for line in result.stdout.splitlines() if " PASSED" in line]
    assert order == ["test_first[lab.yaml]", "test_second[lab.yaml]", "test_wants_another_lab[other/lab.yaml]"], said
    assert leftovers(engine, load(path).topology, image) == {}
    assert leftovers(engine, load(other).topology, image) == {}


def test_a_module_scoped_lab_comes_up_and_goes_down_with_each_module(engine, image, tmp_path):
    path = tiny_lab(tmp_path, "itest-plugin-module", 151)
    write(tmp_path, "test_a.py", """
        def test_marks_the_lab(lab):
            assert lab.exec("alice", "touch /tmp/mark").exit_code == 0

        def test_the_module_keeps_its_lab(lab):
            assert lab.exec("alice", "test -e /tmp/mark").exit_code == 0
        """)
    write(tmp_path, "test_b.py", """
        def test_a_fresh_lab(lab):
            assert lab.exec("alice", "test -e /tmp/mark").exit_code == 1
            assert lab.check("tcp echo").passed
        """)
    result = pytest_in(tmp_path, *QUICK, "--lab-scope", "module", "test_a.py", "test_b.py")
    assert "3 passed" in result.stdout, result.stdout + result.stderr
    assert leftovers(engine, load(path).topology, image) == {}


def test_each_xdist_worker_checks_an_instance_of_its_own(engine, image, tmp_path):
    path = tiny_lab(tmp_path, "itest-plugin-xdist", 152, checks=2)
    result = pytest_in(tmp_path, *QUICK, "-n", "2", "lab.yaml", "--junitxml", "report.xml")
    assert "2 passed" in result.stdout, result.stdout + result.stderr
    cases = ElementTree.parse(tmp_path / "report.xml").getroot().iter("testcase")
    ran_on = {prop.get("value") for case in cases for prop in case.iter("property") if prop.get("name") == "lab"}
    assert ran_on == {"itest-plugin-xdist-gw0", "itest-plugin-xdist-gw1"}
    for worker in ("gw0", "gw1"):
        instance = load(path)
        worker_instance(instance, worker)
        assert leftovers(engine, instance.topology, image) == {}
        assert "released by its owner" in (instance.topology.state_folder / "reaper.log").read_text()
