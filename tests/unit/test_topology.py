"""Parsing and validation: the default lab loads; every kind of bad input gets one line
naming the file, the line and the key path, and what was expected."""

from __future__ import annotations

import subprocess
import sys
from ipaddress import IPv4Address

import pytest

from labctl.errors import LabFileError
from labctl.engines.factory import read_lab

from ..conftest import REPO

GOOD = """
name: t
networks:
  lan: {subnet: 10.1.1.0/24}
  dmz: {subnet: 10.1.2.0/24}
hosts:
  gw: {networks: {lan: 10.1.1.254, dmz: 10.1.2.254}, router: true}
  web:
    networks: {dmz: 10.1.2.10}
    services: [{http: {port: 8080}}, {udp-echo: {port: 8080}}]
  alice: {networks: [lan]}
checks:
  - {name: health, from: alice, to: web:8080, http: {path: /health}}
"""


def error_for(write_lab, text: str) -> LabFileError:
    path = write_lab(text)
    with pytest.raises(LabFileError) as caught:
        read_lab(path)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(str(path))
    return caught.value


def test_default_lab_loads():
    lab = read_lab(REPO / "lab.yaml")
    topology = lab.topology
    assert topology.name == "campus"
    assert len(topology.hosts) >= 4 and len(lab.checks) >= 6
    assert {check.protocol for check in lab.checks} == {"tcp", "udp", "tls", "http", "wire"}
    assert set(lab.scenarios) == {"udp-loses-tcp-delivers", "partition"}
    assert sum(check.expect_error is not None for check in lab.checks) >= 2
    router = next(host for host in topology.hosts.values() if host.router)
    assert len(router.networks) == 2


def test_good_lab_resolves_auto_addresses(write_lab):
    lab = read_lab(write_lab(GOOD))
    # .1 is Docker's bridge; the first automatic address is .2.
    assert lab.topology.hosts["alice"].address_on("lan") == IPv4Address("10.1.1.2")
    assert lab.checks[0].options.status == 200


@pytest.mark.parametrize("text, line, path, words", [
    ("name: t\nnetworks: {lan: {subnet: 10.1.1.0/24}\n", 3, "",
     "malformed YAML: expected ',' or '}', but got '<stream end>' (while parsing a flow mapping "
     "that starts on line 2)"),
    (GOOD.replace("  alice: {networks: [lan]}", "  alice: {networks: [lan], colour: red}"),
     10, "hosts.alice.colour", "unknown key 'colour'"),
    (GOOD.replace("router: true", "router: yes please"), 6, "hosts.gw.router", "expected true or false"),
    (GOOD.replace("{port: 8080}}, {udp", "{port: http}}, {udp"), 9, "hosts.web.services[0].http.port",
     "expected a port from 1 to 65535"),
    (GOOD.replace("dmz: 10.1.2.10", "dmz: 10.1.3.10"), 8, "hosts.web.networks.dmz",
     "outside network 'dmz'"),
    (GOOD.replace("dmz: 10.1.2.10", "dmz: 10.1.2.254"), 8, "hosts.web.networks.dmz",
     "duplicate address 10.1.2.254"),
    (GOOD.replace("dmz: {subnet: 10.1.2.0/24}", "dmz: {subnet: 10.1.0.0/16}"), 4, "networks.dmz.subnet",
     "overlaps network 'lan'"),
    (GOOD.replace("from: alice", "from: carol"), 12, "checks[0].from", "unknown host 'carol'"),
    (GOOD.replace("to: web:8080", "to: www:8080"), 12, "checks[0].to", "unknown host 'www'"),
    (GOOD.replace("{udp-echo: {port: 8080}}", "{tcp-echo: {port: 8080}}"), 9,
     "hosts.web.services[1].tcp-echo.port", "tcp port 8080 is already used"),
    (GOOD.replace("networks: [lan]", "networks: [wan]"), 10, "hosts.alice.networks[0]", "unknown network 'wan'"),
    (GOOD.replace("dmz: 10.1.2.10", "dmz: 10.1.2.1"), 8, "hosts.web.networks.dmz", "reserved for Docker"),
    (GOOD.replace("subnet: 10.1.1.0/24", "subnet: 10.1.1.5/24"), 3, "networks.lan.subnet", "IPv4 subnet"),
    (GOOD + "  - {from: alice, to: web:8080, tcp: {}, udp: {send: x}}\n", 13, "checks[1]",
     "exactly one protocol"),
    (GOOD.replace("http: {path: /health}", "tls: {expect_error: lost}"), 12,
     "checks[0].tls.expect_error", "expected one of"),
    (GOOD.replace("name: t\n", "name: t\nname: u\n"), 2, "name", "duplicate key 'name'"),
    (GOOD.replace("name: t\n", "name: Bad Name\n"), 1, "name", "a lab name"),
    (GOOD.replace("  alice:", "  lc-alice:").replace("from: alice", "from: lc-alice"), 10,
     "hosts.lc-alice", "reserved"),
])
def test_bad_input_names_file_line_and_key(write_lab, text, line, path, words):
    error = error_for(write_lab, text)
    assert error.line == line, str(error)
    assert error.path == path, str(error)
    assert words in error.message, str(error)


def test_missing_and_empty_files(tmp_path, write_lab):
    with pytest.raises(LabFileError, match="no such file"):
        read_lab(tmp_path / "absent.yaml")
    with pytest.raises(LabFileError, match="empty"):
        read_lab(write_lab(""))
    with pytest.raises(LabFileError, match="expected a mapping"):
        read_lab(write_lab("- just\n- a list\n"))


def test_files_must_stay_inside_the_lab_folder(write_lab):
    error = error_for(write_lab, GOOD.replace("alice: {networks: [lan]}",
                                              "alice: {networks: [lan], files: ['../x:/x']}"))
    assert "outside the lab folder" in error.message


def test_cli_prints_one_line_and_creates_nothing(tmp_path, write_lab):
    path = write_lab(GOOD.replace("dmz: 10.1.2.10", "dmz: 10.9.9.9"))
    before = sorted(p.name for p in tmp_path.iterdir())
    for verb in ("validate", "render", "up"):
        result = subprocess.run([sys.executable, "-m", "labctl", "-f", str(path), verb],
                                capture_output=True, text=True, cwd=tmp_path)
        assert result.returncode == 3   # a bad lab file (labctl.errors.LAB_FILE)
        assert result.stdout == ""
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, result.stderr
        assert "Traceback" not in result.stderr
        assert f"{path}:8: hosts.web.networks.dmz: address 10.9.9.9 is outside" in lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == before
