"""The dependency rule, held by the import-linter contracts in pyproject.toml: they pass on
the package, and fail on an upward import or a circle, inside a function too. And what
reading a lab touches: `validate` and `render` load no docker, paramiko or subprocess."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
LINT = Path(sys.executable).parent / "lint-imports"


def lint(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(LINT), "--config", str(REPO / "pyproject.toml"), "--no-cache"],
                          cwd=root, capture_output=True, text=True, timeout=120,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(root)})


@pytest.fixture
def package_copy(tmp_path: Path) -> Path:
    shutil.copytree(REPO / "labctl", tmp_path / "labctl", ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path


def test_the_contracts_hold_on_the_package(package_copy):
    result = lint(package_copy)
    assert result.returncode == 0, result.stdout[-2000:]
    assert "3 kept, 0 broken" in result.stdout


def test_an_upward_import_inside_a_function_breaks_the_layers(package_copy):
    module = package_copy / "labctl" / "model" / "topology.py"
    module.write_text(module.read_text() + "\n\ndef _sneaky():\n    from ..ops import lifecycle\n"
                      "    return lifecycle\n")
    result = lint(package_copy)
    assert result.returncode != 0
    assert "Layers: each imports only those below it BROKEN" in result.stdout
    assert "labctl.model.topology -> labctl.ops.lifecycle" in result.stdout


def test_a_circle_inside_a_layer_breaks_the_contracts(package_copy):
    module = package_copy / "labctl" / "model" / "yamlsource.py"
    module.write_text(module.read_text() + "\n\ndef _loop():\n    from .topology import Topology\n"
                      "    return Topology\n")
    result = lint(package_copy)
    assert result.returncode != 0
    assert "No circles between the modules of any package BROKEN" in result.stdout


def test_docker_below_the_engines_breaks_the_contracts(package_copy):
    module = package_copy / "labctl" / "render" / "compose.py"
    module.write_text(module.read_text() + "\n\ndef _engine():\n    import docker\n    return docker\n")
    result = lint(package_copy)
    assert result.returncode != 0
    assert "Below the engines: no docker, paramiko, requests or subprocess BROKEN" in result.stdout


PROBE = """
import json, sys
from labctl.cli.main import main
code = main(sys.argv[1:])
heavy = sorted(name for name in ("docker", "paramiko", "requests", "subprocess") if name in sys.modules)
print(json.dumps({"code": code, "loaded": heavy}))
"""


@pytest.mark.parametrize("verb", ["validate", "render"])
def test_validate_and_render_load_no_engine_library(tmp_path, verb):
    lab = tmp_path / "lab.yaml"
    shutil.copy(REPO / "lab.yaml", lab)
    result = subprocess.run([sys.executable, "-c", PROBE, verb, str(lab)], capture_output=True,
                            text=True, timeout=60, cwd=tmp_path)
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    assert outcome == {"code": 0, "loaded": []}, result.stderr
    if verb == "render":
        assert (tmp_path / "compose" / "campus.yaml").is_file()
