"""Shared helpers: write lab files into temporary folders."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


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
