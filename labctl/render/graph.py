"""The lab as a picture: networks as segments with their hosts on them (routers set apart),
each host's addresses and services, as a Graphviz DOT document or a Mermaid flowchart.

An `Overlay` (what a running lab is doing: host states, faults, impairments, the last
result of each check) colours hosts by state and lists the rest; without one the picture
is the lab file's alone. Building the documents runs nothing: drawing DOT into SVG or PNG
is the caller's (labctl graph)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ..model.topology import Host, Network, Topology
from ..text import visible

STATE_COLOURS = {"running": "#c9f2d0", "paused": "#fff3b0", "exited": "#f6c6c6", "stopped": "#f6c6c6",
                 "missing": "#e0e0e0", "created": "#e0e0e0", "restarting": "#fff3b0"}
NETWORK_COLOUR = "#dbe9ff"
ROUTER_COLOUR = "#ffe2b8"


@dataclass
class CheckMark:
    name: str
    passed: bool
    source: str
    target: str | None


@dataclass
class Overlay:
    """A running lab's state, drawn over its topology."""
    states: dict[str, str] = field(default_factory=dict)            # host -> running, exited, ...
    faults: dict[str, list[str]] = field(default_factory=dict)      # host -> its faults
    impairments: dict[str, str] = field(default_factory=dict)       # HOST:NETWORK -> "delay 40ms"
    checks: list[CheckMark] = field(default_factory=list)           # each check's last result


def host_label(topology: Topology, host: Host) -> list[str]:
    """The lines a host's box shows: name (and role), addresses, services."""
    lines = [host.name + (" (router)" if host.router else "")]
    for attachment in host.attachments:
        lines.append(f"{attachment.network}: " + ", ".join(str(a) for a in attachment.addresses))
    lines += [f"{service.kind} {service.port}" if service.transport != "raw" else
              f"{service.kind} proto {service.port}" for service in host.services]
    if host.command:
        lines.append("runs: " + " ".join(host.command)[:40])
    return lines


def network_label(network: Network) -> list[str]:
    return [network.name, *[str(subnet) for subnet in network.subnets],
            "internal" if network.internal else "not internal"]


def _host_text(topology: Topology, host: Host, overlay: Overlay | None) -> list[str]:
    """A host's lines, and what the overlay says of it: its state and faults."""
    text = host_label(topology, host)
    if overlay and overlay.states.get(host.name):
        text.append(f"[{overlay.states[host.name]}]")
    return text + [f"fault: {fault}" for fault in (overlay.faults.get(host.name, []) if overlay else [])]


def _links(topology: Topology, overlay: Overlay | None) -> list[tuple[str, str, str]]:
    """(network, host, the impairment on that link, or '') for every attachment."""
    return [(attachment.network, host.name,
             overlay.impairments.get(f"{host.name}:{attachment.network}", "") if overlay else "")
            for host in topology.hosts.values() for attachment in host.attachments]


def _check_pairs(overlay: Overlay | None) -> dict[tuple[str, str], list[CheckMark]]:
    """One arrow per client and server, for all the checks between them."""
    pairs: dict[tuple[str, str], list[CheckMark]] = {}
    for mark in (overlay.checks if overlay else []):
        if mark.source and mark.target:
            pairs.setdefault((mark.source, mark.target), []).append(mark)
    return pairs


def _id(kind: str, name: str) -> str:
    return f"{kind}_{re.sub(r'[^A-Za-z0-9_]', '_', name)}"


def _dot_text(text: str) -> str:
    """Text inside a DOT string: controls written out (Graphviz would carry them into the
    SVG, which would no longer parse), then backslashes and quotes escaped."""
    return visible(text).replace("\\", "\\\\").replace('"', '\\"')


def dot_document(topology: Topology, overlay: Overlay | None = None) -> str:
    """Graphviz DOT: a box per network, a rounded box per host, an edge per attachment
    (labelled with the host's impairment there, if any), checks as dashed arrows."""
    lines = [f'graph "{_dot_text(topology.name)}" {{',
             '  graph [layout=dot, rankdir=TB, fontname="Helvetica", labelloc=t, '
             f'label="{_dot_text(topology.name)}"];',
             '  node [fontname="Helvetica", fontsize=10];', '  edge [fontname="Helvetica", fontsize=9];']
    for network in topology.networks.values():
        label = "\\n".join(_dot_text(line) for line in network_label(network))
        lines.append(f'  {_id("net", network.name)} [shape=box, style="filled,bold", fillcolor="{NETWORK_COLOUR}", '
                     f'label="{label}", id="{_id("net", network.name)}", class="network"];')
    for host in topology.hosts.values():
        text = _host_text(topology, host, overlay)
        state = overlay.states.get(host.name) if overlay else None
        colour = STATE_COLOURS.get(state or "", "#ffffff") if overlay else (ROUTER_COLOUR if host.router else "#ffffff")
        shape = "hexagon" if host.router else "box"
        label = "\\n".join(_dot_text(line) for line in text)
        lines.append(f'  {_id("host", host.name)} [shape={shape}, style="rounded,filled", fillcolor="{colour}", '
                     f'label="{label}", id="{_id("host", host.name)}", class="host"];')
    for network_name, host_name, impairment in _links(topology, overlay):
        extra = f', label="{_dot_text(impairment)}", color="#cf222e", fontcolor="#cf222e"' if impairment else ""
        lines.append(f'  {_id("net", network_name)} -- {_id("host", host_name)} [penwidth=1.5{extra}];')
    for (source, target), marks in _check_pairs(overlay).items():
        failed = [mark.name for mark in marks if not mark.passed]
        colour = "#cf222e" if failed else "#1a7f37"
        label = f"{len(failed)} of {len(marks)} failed" if failed else f"{len(marks)} passed"
        names = "; ".join(mark.name for mark in marks)
        lines.append(f'  {_id("host", source)} -- {_id("host", target)} [style=dashed, color="{colour}", '
                     f'fontcolor="{colour}", label="{label}", constraint=false, tooltip="{_dot_text(names)}"];')
    lines.append("}")
    return "\n".join(lines) + "\n"


def _mermaid_text(text: str) -> str:
    """Text inside a Mermaid label, which Mermaid reads as HTML: controls written out, then
    markup and its own entity codes (#name;) escaped as entity codes."""
    return (visible(text).replace("#", "#35;").replace('"', "#quot;").replace("<", "#lt;")
            .replace(">", "#gt;"))


def _mermaid_lines(lines: list[str]) -> str:
    return "<br>".join(_mermaid_text(line) for line in lines)


def mermaid_document(topology: Topology, overlay: Overlay | None = None) -> str:
    """A Mermaid flowchart: the same networks, hosts and attachments."""
    lines = ["flowchart TB"]
    for network in topology.networks.values():
        lines.append(f'  {_id("net", network.name)}[["{_mermaid_lines(network_label(network))}"]]')
    for host in topology.hosts.values():
        body = _mermaid_lines(_host_text(topology, host, overlay))
        lines.append(f'  {_id("host", host.name)}{{{{"{body}"}}}}' if host.router
                     else f'  {_id("host", host.name)}("{body}")')
    for network_name, host_name, impairment in _links(topology, overlay):
        link = f' -- "{_mermaid_text(impairment)}" --- ' if impairment else " --- "
        lines.append(f"  {_id('net', network_name)}{link}{_id('host', host_name)}")
    for (source, target), marks in _check_pairs(overlay).items():
        failed = [mark.name for mark in marks if not mark.passed]
        label = f"{len(failed)} of {len(marks)} failed: " + ", ".join(failed) if failed else f"{len(marks)} passed"
        lines.append(f'  {_id("host", source)} -. "{_mermaid_text(label)}" .-> {_id("host", target)}')
    if overlay:
        for host_name, state in overlay.states.items():
            colour = STATE_COLOURS.get(state)
            if colour and host_name in topology.hosts:
                lines.append(f"  style {_id('host', host_name)} fill:{colour}")
    return "\n".join(lines) + "\n"
