"""What `labctl graph` writes: each format is one module here that declares a `GRAPH`,
found by looking. The documents come from labctl.render.graph; SVG, PNG and the HTML page
are drawn from its DOT by Graphviz."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Callable

from ...errors import LabError
from ...model.topology import Topology
from ...registry import declared
from ...render.graph import Overlay, dot_document
from ...text import one_line


@dataclass(frozen=True)
class GraphFormat:
    name: str
    suffixes: tuple[str, ...]   # a file ending so, written with -o, is in this format
    summary: str
    render: Callable[[Topology, "Overlay | None"], bytes]
    binary: bool = False        # not for a terminal


@cache
def graph_formats() -> dict[str, GraphFormat]:
    return {item.name: item for item in declared(__name__, __path__, "GRAPH", GraphFormat)}


def format_for(name: str) -> GraphFormat | None:
    suffix = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    return next((item for item in graph_formats().values() if suffix in item.suffixes), None)


def drawn(topology: Topology, overlay: Overlay | None, output: str) -> bytes:
    """The lab's DOT drawn by Graphviz into `output` (svg, png)."""
    try:
        import graphviz  # only the formats that draw need it, and it is an extra
    except ImportError:
        raise LabError(f"drawing {output} needs graphviz: pip install 'labctl-net[graph]' "
                       "(or write --format dot or mermaid)") from None
    try:
        return graphviz.Source(dot_document(topology, overlay)).pipe(format=output)
    except graphviz.ExecutableNotFound:
        raise LabError("Graphviz's dot is not installed: run 'labctl doctor --install' (Debian's graphviz), "
                       "or write --format dot or mermaid") from None
    except graphviz.CalledProcessError as exc:
        said = (exc.stderr or b"").decode(errors="replace").strip()
        raise LabError(f"Graphviz could not draw the lab: {one_line(said, 600)}") from None
