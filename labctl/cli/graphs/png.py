"""PNG, drawn by Graphviz."""

from . import GraphFormat, drawn

GRAPH = GraphFormat("png", ("png",), "PNG (Graphviz)", lambda topology, overlay: drawn(topology, overlay, "png"),
                    binary=True)
