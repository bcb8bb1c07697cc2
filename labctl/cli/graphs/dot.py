"""Graphviz DOT, for `dot -Tsvg` or any other Graphviz tool."""

from ...render.graph import dot_document
from . import GraphFormat

GRAPH = GraphFormat("dot", ("dot", "gv"), "Graphviz DOT",
                    lambda topology, overlay: dot_document(topology, overlay).encode())
