"""One self-contained HTML page: the drawing (inline SVG, no script, nothing fetched), a
table of the hosts, and, with --status, the faults, impairments and each check's last
result."""

from __future__ import annotations

from ...model.topology import Topology
from ...render.graph import Overlay, host_label
from ...text import html as escape   # escaped, and controls written out: names come from the lab file
from . import GraphFormat, drawn

STYLE = """body{font-family:sans-serif;margin:1.5em;color:#222}svg{max-width:100%;height:auto}
table{border-collapse:collapse;margin-top:1em}td,th{border:1px solid #ccc;padding:.25em .5em;text-align:left}
.pass{color:#1a7f37}.fail{color:#cf222e;font-weight:bold}"""


def _svg(topology: Topology, overlay: Overlay | None) -> str:
    text = drawn(topology, overlay, "svg").decode()
    return text[text.index("<svg"):]   # inline: no XML prolog or doctype inside the page


def render(topology: Topology, overlay: Overlay | None) -> bytes:
    rows = []
    for host in topology.hosts.values():
        state = overlay.states.get(host.name, "") if overlay else ""
        faults = ", ".join(overlay.faults.get(host.name, [])) if overlay else ""
        rows.append(f'<tr id="row-{escape(host.name)}"><td>{escape(host.name)}</td>'
                    f"<td>{'<br>'.join(escape(line) for line in host_label(topology, host)[1:])}</td>"
                    + (f"<td>{escape(state)}</td><td>{escape(faults)}</td>" if overlay else "") + "</tr>")
    hosts = ("<table><thead><tr><th>host</th><th>addresses and services</th>"
             + ("<th>state</th><th>faults</th>" if overlay else "") + "</tr></thead><tbody>"
             + "".join(rows) + "</tbody></table>")
    extra = ""
    if overlay and overlay.impairments:
        extra += "<h2>Impairments</h2><ul>" + "".join(
            f"<li>{escape(where)}: {escape(what)}</li>" for where, what in sorted(overlay.impairments.items())) + "</ul>"
    if overlay and overlay.checks:
        extra += "<h2>Checks, as last run</h2><table><tbody>" + "".join(
            f'<tr><td>{escape(mark.name)}</td><td class="{"pass" if mark.passed else "fail"}">'
            f'{"pass" if mark.passed else "FAIL"}</td></tr>' for mark in overlay.checks) + "</tbody></table>"
    title = escape(f"lab {topology.name}" + (" (status)" if overlay else ""))
    page = (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
            f"<style>{STYLE}</style></head><body><h1>{title}</h1>{_svg(topology, overlay)}"
            f"<h2>Hosts</h2>{hosts}{extra}</body></html>\n")
    return page.encode()


GRAPH = GraphFormat("html", ("html", "htm"), "one self-contained HTML page (the SVG inline)", render)
