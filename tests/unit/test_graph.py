"""The lab's picture as documents: every network and host on it, routers set apart,
addresses of both families and services, and a running lab's state drawn over it."""

from __future__ import annotations

import re

import pytest

from labctl.cli.graphs import format_for, graph_formats
from labctl.engines.factory import read_lab
from labctl.render.graph import CheckMark, Overlay, dot_document, mermaid_document

from ..conftest import REPO


@pytest.fixture(scope="module")
def campus():
    return read_lab(REPO / "lab.yaml").topology


def test_dot_has_every_network_and_host_with_addresses_and_services(campus):
    dot = dot_document(campus)
    for name in campus.networks:
        assert f'id="net_{name}", class="network"' in dot
    for name, host in campus.hosts.items():
        assert f'id="host_{name}", class="host"' in dot
        for attachment in host.attachments:
            assert f"net_{attachment.network} -- host_{name}" in dot
            for address in attachment.addresses:
                assert str(address) in dot
    assert re.search(r'host_gw \[shape=hexagon', dot), "the router is set apart"
    assert "tls-echo 9443" in dot and "fd00:10:2::/64" in dot
    assert dot.count("--") == sum(len(h.attachments) for h in campus.hosts.values())


def test_a_running_labs_state_is_drawn_over_it(campus):
    overlay = Overlay(states={"alice": "running", "web": "exited"}, faults={"alice": ["partitioned from web"]},
                      impairments={"bob:lan": "delay 40ms"},
                      checks=[CheckMark("tcp echo", True, "alice", "echo"), CheckMark("web health", False, "alice", "web")])
    dot = dot_document(campus, overlay)
    assert 'fillcolor="#f6c6c6", label="web' in dot and "[exited]" in dot
    assert "fault: partitioned from web" in dot
    assert 'net_lan -- host_bob [penwidth=1.5, label="delay 40ms"' in dot
    assert 'host_alice -- host_echo [style=dashed, color="#1a7f37", fontcolor="#1a7f37", label="1 passed"' in dot
    assert 'host_alice -- host_web [style=dashed, color="#cf222e", fontcolor="#cf222e", label="1 of 1 failed"' in dot
    mermaid = mermaid_document(campus, overlay)
    assert mermaid.startswith("flowchart TB")
    assert 'host_alice -. "1 of 1 failed: web health" .-> host_web' in mermaid
    assert "style host_web fill:#f6c6c6" in mermaid and 'net_lan -- "delay 40ms" --- host_bob' in mermaid


def test_names_that_would_break_a_document_are_quoted(write_lab):
    topology = read_lab(write_lab("""
        name: q
        networks: {a-b: {subnet: 10.9.0.0/24}}
        hosts:
          x-1: {networks: [a-b], command: [echo, 'say "quoted" \\ text']}
    """)).topology
    dot = dot_document(topology)
    assert "net_a_b -- host_x_1" in dot and '\\"quoted' in dot
    assert "#quot;quoted" in mermaid_document(topology)


def test_formats_are_registered_and_found_by_suffix():
    assert set(graph_formats()) == {"dot", "mermaid", "svg", "png", "html"}
    assert format_for("lab.SVG").name == "svg" and format_for("x.mmd").name == "mermaid"
    assert format_for("x.gv").name == "dot" and format_for("x.pdf") is None
