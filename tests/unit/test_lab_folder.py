"""A lab folder may come from someone else: nothing labctl writes follows a symlink or
leaves the folder, and nothing in a lab file reads the operator's environment."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from labctl.engines.compose import compose_command, compose_environment
from labctl.engines.factory import read_lab
from labctl.errors import LabError
from labctl.files import ensure_folder, write_file
from labctl.render.lab import render_lab

LAB = """
name: safe
networks:
  lan: {subnet: 10.9.1.0/24}
hosts:
  a:
    networks: [lan]
    env: {GREETING: "${HOME} $USER $$ ${SECRET:-x}"}
    command: ["sh", "-c", "echo $PATH > /tmp/path"]
"""


@pytest.fixture
def lab_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "lab"
    folder.mkdir()
    (folder / "lab.yaml").write_text(LAB)
    return folder


def render_cli(folder: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "labctl", "render", "lab.yaml"], cwd=folder,
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("planted", ["compose/safe.yaml", ".labctl/safe/pki/ca.key",
                                     ".labctl/safe/pki/hosts/a.pem", ".labctl/safe/pki"])
def test_no_write_follows_a_symlink_the_folder_ships(lab_folder, tmp_path, planted):
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "bashrc").write_text("mine\n")
    link = lab_folder / planted
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(victim if planted.endswith("pki") else victim / "bashrc")
    result = render_cli(lab_folder)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "is a symbolic link" in result.stderr, result.stderr
    assert [path.name for path in victim.iterdir()] == ["bashrc"]
    assert (victim / "bashrc").read_text() == "mine\n"


def test_a_symlinked_folder_on_the_way_is_refused(lab_folder, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (lab_folder / "compose").symlink_to(elsewhere)
    result = render_cli(lab_folder)
    assert result.returncode == 2 and "compose is a symbolic link" in result.stderr
    assert list(elsewhere.iterdir()) == []


def test_writes_stay_inside_the_folder(tmp_path):
    with pytest.raises(LabError, match="only inside the lab's folder"):
        write_file(tmp_path / "lab", tmp_path / "lab" / ".." / "outside.txt", "x")
    assert not (tmp_path / "outside.txt").exists()


def test_keys_are_private_and_the_document_holds_none(lab_folder):
    lab = read_lab(lab_folder / "lab.yaml")
    document = render_lab(lab.topology)
    pki = lab_folder / ".labctl" / "safe" / "pki"
    assert oct(pki.stat().st_mode & 0o777) == "0o700"
    assert oct((pki / "ca.key").stat().st_mode & 0o777) == "0o600"
    assert oct((pki / "hosts" / "a.key").stat().st_mode & 0o777) == "0o600"
    assert "PRIVATE KEY" not in document.read_text()


def test_lab_values_are_literal_in_the_rendered_file(lab_folder, monkeypatch):
    lab = read_lab(lab_folder / "lab.yaml")
    document = render_lab(lab.topology)
    service = yaml.safe_load(document.read_text())["services"]["a"]
    assert service["environment"]["GREETING"] == "$${HOME} $$USER $$$$ $${SECRET:-x}"
    assert service["command"][-3:] == ["sh", "-c", "echo $$PATH > /tmp/path"]
    compose = compose_command()
    if compose is None:
        pytest.skip("Compose v2 is not installed here (make env installs it)")
    monkeypatch.setenv("SECRET", "operator-secret")
    seen = subprocess.run([*compose, "-f", str(document), "config", "--format", "json"],
                          capture_output=True, text=True, timeout=60,
                          env={**os.environ, "SECRET": "operator-secret"})
    assert seen.returncode == 0, seen.stderr
    environment = json.loads(seen.stdout)["services"]["a"]["environment"]
    # Compose left every `$` escaped (a literal dollar in the container), filling in nothing.
    assert environment["GREETING"] == "$${HOME} $$USER $$$$ $${SECRET:-x}"
    assert "operator-secret" not in seen.stdout and os.environ["HOME"] not in environment["GREETING"]


def test_compose_sees_nothing_of_the_operators_environment(monkeypatch):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "hunter2")
    monkeypatch.setenv("DOCKER_HOST", "unix:///var/run/docker.sock")
    passed = compose_environment()
    assert "AWS_SECRET_ACCESS_KEY" not in passed and passed["DOCKER_HOST"].startswith("unix://")


def test_the_state_folder_keeps_itself_out_of_git(lab_folder):
    """`git add -A` in a lab folder never commits the lab CA's private key."""
    render_lab(read_lab(lab_folder / "lab.yaml").topology)
    assert (lab_folder / ".labctl" / "safe" / "pki" / "ca.key").exists()
    assert (lab_folder / ".labctl" / ".gitignore").read_text().splitlines()[-1] == "*"


def test_the_version_is_the_distributions_own():
    from importlib.metadata import version

    import labctl
    assert labctl.__version__ == version("labctl-net")


def test_a_folder_made_by_another_process_meanwhile_is_taken(tmp_path, monkeypatch):
    """Two pytest-xdist workers may both find `.labctl` missing; the second mkdir must not fail,
    and a symlink planted in that moment is still refused."""
    made = []
    real_mkdir = os.mkdir
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    def racing_mkdir(path, mode=0o777):
        made.append(Path(path))
        real_mkdir(path, mode)  # the other worker wins
        real_mkdir(path, mode)

    monkeypatch.setattr(os, "mkdir", racing_mkdir)
    folder = ensure_folder(tmp_path, tmp_path / ".labctl" / "gw1")
    assert folder.is_dir() and made == [tmp_path / ".labctl", tmp_path / ".labctl" / "gw1"]

    def planting_mkdir(path, mode=0o777):
        os.symlink(elsewhere, path)
        real_mkdir(path, mode)

    monkeypatch.setattr(os, "mkdir", planting_mkdir)
    with pytest.raises(LabError, match="symbolic link"):
        ensure_folder(tmp_path, tmp_path / "planted" / "x")
    assert not list(elsewhere.iterdir())
