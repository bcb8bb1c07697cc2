"""A shell on a lab host with a terminal of its own: what `labctl shell` opens, and each
terminal of `labctl ui`."""

from __future__ import annotations

from ..engines.base import Engine, Terminal
from ..model.topology import Topology

# bash where the host has it (labctl's image does), else sh.
SHELL = ["sh", "-c", "if command -v bash >/dev/null; then exec bash -i; else exec sh -i; fi"]


def open_shell(topology: Topology, engine: Engine, host: str, term: str = "xterm",
               argv: list[str] | None = None) -> Terminal:
    """`argv` (else SHELL) on `host`, its terminal of type `term`."""
    return engine.terminal(topology, host, argv or SHELL, {"TERM": term})
