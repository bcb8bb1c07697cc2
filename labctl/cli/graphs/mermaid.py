"""A Mermaid flowchart, for a README or a wiki that renders Mermaid."""

from ...render.graph import mermaid_document
from . import GraphFormat

GRAPH = GraphFormat("mermaid", ("mmd", "mermaid"), "a Mermaid flowchart",
                    lambda topology, overlay: mermaid_document(topology, overlay).encode())
