"""Shared helpers: write lab files into temporary folders."""

from __future__ import annotations

import importlib.util
import re
import signal
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

# Tests press Ctrl-C on the labctl they start. A run started in the background by a shell
# without job control ignores SIGINT, and every program it starts would inherit that and
# never see the press: take it back, so that each child starts as from a terminal.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


def bench_scale():
    """bench/scale.py as a module: the 300-host lab's generator, shared by the tests."""
    spec = importlib.util.spec_from_file_location("bench_scale", REPO / "bench" / "scale.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(spec.name, module)   # its dataclasses look their module up by name
    spec.loader.exec_module(sys.modules[spec.name])
    return sys.modules[spec.name]


@pytest.fixture
def write_lab(tmp_path: Path):
    def write(text: str, name: str = "lab.yaml") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text).lstrip())
        return path
    return write


def without_ipv6(text: str) -> str:
    """The default lab as an engine without IPv6 runs it: no subnet6, no IPv6 check. A
    Swarm's overlays carry no IPv6 (labctl refuses subnet6 there), and the machines the
    multihost tests start are engines in unprivileged containers, whose read-only
    /proc/sys keeps Docker from enabling IPv6 on an interface."""
    text = re.sub(r', subnet6: "[^"]*"', "", text)
    return re.sub(r"\n  - name: [^\n]*ipv6\n(?:    [^\n]*\n)+", "\n", text)
