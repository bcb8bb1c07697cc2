"""SVG, drawn by Graphviz: each host and network is an element with its own id."""

from . import GraphFormat, drawn

GRAPH = GraphFormat("svg", ("svg",), "SVG (Graphviz)", lambda topology, overlay: drawn(topology, overlay, "svg"))
