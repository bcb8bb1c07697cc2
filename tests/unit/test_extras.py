"""What the extras hold: paramiko (`ssh`) and graphviz (`graph`) are not needed to install
labctl, and a command that needs a missing one says in one line which extra brings it."""

from __future__ import annotations

import sys
from importlib.metadata import requires

import pytest

from labctl.cli.graphs import drawn, graph_formats
from labctl.engines.factory import read_lab
from labctl.errors import LabError

from ..conftest import REPO


def test_paramiko_and_graphviz_are_extras_and_cryptography_is_core():
    declared = requires("labctl-net") or []
    core = {line.split(">")[0].split(";")[0].strip().lower() for line in declared if "extra ==" not in line}
    extras = {line.split(">")[0].strip().lower(): line.split("extra ==")[1].strip(" \"'")
              for line in declared if "extra ==" in line}
    assert {"docker", "pyyaml", "cryptography"} <= core   # the lab's CA is made with cryptography
    assert "paramiko" not in core and "graphviz" not in core
    assert extras.get("paramiko") == "ssh" and extras.get("graphviz") == "graph"


@pytest.mark.parametrize("name, drawing", [("svg", "svg"), ("png", "png"), ("html", "svg")])
def test_drawing_without_graphviz_names_the_extra_in_one_line(monkeypatch, name, drawing):
    topology = read_lab(REPO / "lab.yaml").topology
    monkeypatch.setitem(sys.modules, "graphviz", None)   # `import graphviz` now fails as if absent
    with pytest.raises(LabError) as raised:
        graph_formats()[name].render(topology, None)
    message = str(raised.value)
    assert message.startswith(f"drawing {drawing} needs graphviz: pip install 'labctl-net[graph]'")
    assert "\n" not in message
    with pytest.raises(LabError, match=r"labctl-net\[graph\]"):
        drawn(topology, None, drawing)


def test_the_formats_that_need_no_graphviz_still_write_without_it(monkeypatch):
    topology = read_lab(REPO / "lab.yaml").topology
    monkeypatch.setitem(sys.modules, "graphviz", None)
    for name in ("dot", "mermaid"):
        assert b"host_alice" in graph_formats()[name].render(topology, None)
