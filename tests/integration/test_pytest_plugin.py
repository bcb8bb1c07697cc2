"""The pytest plugin, run as a user would run it: in a pytest of its own."""

from __future__ import annotations

import subprocess
import sys
import textwrap

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
    assert "test_it.py::test_uses_the_lab PASSED" in result.stdout, result.stdout + result.stderr
    assert "KeyboardInterrupt" in result.stdout + result.stderr
    assert "removing" in result.stderr
    assert leftovers(engine, load(path).topology, image) == {}
