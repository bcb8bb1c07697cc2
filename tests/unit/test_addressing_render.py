"""Addresses, routes through routers, and the rendered Compose document."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network

from labctl.engines.factory import read_lab
from labctl.model.addressing import address_for, computed_routes
from labctl.names import LAB_LABEL, bridge_name
from labctl.render.compose import readiness_probe, render
from labctl.render.pki import LabPki

CHAIN = """
name: chain
networks:
  a: {subnet: 10.5.1.0/24}
  b: {subnet: 10.5.2.0/24}
  c: {subnet: 10.5.3.0/24}
hosts:
  r1: {networks: {a: 10.5.1.254, b: 10.5.2.1}, router: true}
  r2: {networks: {b: 10.5.2.254, c: 10.5.3.254}, router: true}
  left: {networks: [a]}
  right: {networks: [c], services: [{tcp-echo: {port: 7}}]}
  extra:
    networks: [b]
    files: ["./srv.py:/srv/srv.py"]
    command: python3 /srv/srv.py
    ready: {tcp: 9000}
"""


def load_chain(write_lab, tmp_path):
    (tmp_path / "srv.py").write_text("print('hi')\n")
    return read_lab(write_lab(CHAIN.replace("10.5.2.1}", "10.5.2.2}"))).topology


def test_routes_follow_the_shortest_router_path(write_lab, tmp_path):
    topology = load_chain(write_lab, tmp_path)
    left = {r.destination: r.via for r in computed_routes(topology, topology.hosts["left"])}
    # Two hops away, c is still reached through the first router on the way.
    assert left == {IPv4Network("10.5.2.0/24"): IPv4Address("10.5.1.254"),
                    IPv4Network("10.5.3.0/24"): IPv4Address("10.5.1.254")}
    r1 = {r.destination: r.via for r in computed_routes(topology, topology.hosts["r1"])}
    assert r1 == {IPv4Network("10.5.3.0/24"): IPv4Address("10.5.2.254")}
    right = {r.destination: r.via for r in computed_routes(topology, topology.hosts["right"])}
    assert right[IPv4Network("10.5.1.0/24")] == IPv4Address("10.5.3.254")


def test_address_for_prefers_a_shared_network(write_lab, tmp_path):
    topology = load_chain(write_lab, tmp_path)
    r1, left, extra = topology.hosts["r1"], topology.hosts["left"], topology.hosts["extra"]
    assert address_for(topology, r1, left) == IPv4Address("10.5.1.254")
    assert address_for(topology, r1, extra) == IPv4Address("10.5.2.2")


def test_render_is_standard_compose_with_labels_everywhere(write_lab, tmp_path):
    topology = load_chain(write_lab, tmp_path)
    output = tmp_path / "compose" / "chain.yaml"
    document = render(topology, "labctl-host:test", LabPki(tmp_path / ".labctl/chain/pki"), output)
    assert document["name"] == "lab-chain"
    for name, network in document["networks"].items():
        assert network["internal"] is True
        assert network["labels"][LAB_LABEL] == "chain"
        assert network["ipam"]["config"][0]["subnet"] == str(topology.networks[name].subnet)
        assert len(bridge_name(topology, name)) <= 15
    services = document["services"]
    assert all(service["labels"][LAB_LABEL] == "chain" for service in services.values())
    # Hosts never get NET_ADMIN; only the short-lived helpers do.
    for name in topology.hosts:
        assert "cap_add" not in services[name]
    assert services["r1"]["sysctls"] == {"net.ipv4.ip_forward": 1}
    routes = services["lc-routes-left"]
    assert routes["network_mode"] == "service:left" and routes["cap_add"] == ["NET_ADMIN"]
    assert "10.5.3.0/24=10.5.1.254" in routes["command"]
    assert services["lc-fabric"]["network_mode"] == "host"
    assert services["left"]["networks"] == {"a": {"ipv4_address": "10.5.1.2"}}
    assert "right:10.5.3.2" in services["left"]["extra_hosts"]
    extra = services["extra"]
    assert "../srv.py:/srv/srv.py:ro" in extra["volumes"]
    # Started once the host is refused Docker's resolver (its networks are all internal).
    assert extra["command"][:2] == ["sh", "-c"] and "127.0.0.11" in extra["command"][2]
    assert extra["command"][-2:] == ["python3", "/srv/srv.py"]
    # Its readiness is confirmed once, by `up` and by `status`: no healthcheck runs in it.
    assert "healthcheck" not in extra and "9000" in " ".join(readiness_probe(topology.hosts["extra"]) or [])
    assert any(v.endswith(":/opt/labctl/pki/host.key:ro") for v in services["right"]["volumes"])
