"""The 300-host lab `make bench` brings up (bench/scale.py) is a lab file labctl reads: the
reader's bounds on a file leave room for it, with every built-in kind serving and 1,500
checks, in well under a second."""

from __future__ import annotations

from pathlib import Path

from labctl.engines.factory import read_lab
from labctl.model.yamlsource import MAX_FILE_BYTES, MAX_NODES
from labctl.ops import doctor

from ..conftest import bench_scale


def test_three_hundred_hosts_and_1500_checks_are_read_within_the_bounds(tmp_path: Path):
    scale = bench_scale()
    plan = scale.scale_lab("scale", 210)
    text = plan.yaml()
    assert len(text.encode()) < MAX_FILE_BYTES * 3 // 4, "room for longer names than the bench's"
    path = tmp_path / "lab.yaml"
    path.write_text(text)
    lab = read_lab(path)
    hosts = [host for host in lab.topology.hosts.values() if not host.router]
    assert len(hosts) == 300 and len(lab.topology.networks) == 6
    assert len(lab.checks) == 1500
    assert {service.kind for host in hosts for service in host.services} == set(scale.KINDS)
    assert all(check.server.mode != "off" for check in lab.checks), "both sides of every check"
    # The values of the file, counted as the reader counts them, are well within its bound.
    values = _values(plan.document())
    assert 15_000 < values < MAX_NODES * 2 // 3, values


def test_a_swarm_form_of_the_lab_names_networks_not_addresses(tmp_path: Path):
    plan = bench_scale().scale_lab("scale", 210, 30, 30, static=False)
    assert all(isinstance(host["networks"], list) for host in plan.hosts.values())
    path = tmp_path / "lab.yaml"
    path.write_text(plan.yaml())
    assert len(read_lab(path).checks) == 300


def _values(data) -> int:
    if isinstance(data, dict):
        return len(data) + sum(_values(value) for value in data.values())
    if isinstance(data, list):
        return 1 + sum(_values(item) for item in data)
    return 1


# -- what breaks first at this size: the machine's neighbour tables ------------------------------

def _thresholds(v4: int, v6: int):
    def read(path: Path) -> str:
        assert path.name == "gc_thresh3", path
        return str(v4 if "/ipv4/" in str(path) else v6)
    return read


def test_doctor_says_how_many_hosts_the_neighbour_tables_hold_and_how_to_raise_them():
    finding = doctor.neighbour_finding(_thresholds(1024, 1024))
    assert not finding.ok and not finding.required, "a warning: small labs run as they are"
    assert "gc_thresh3 1024: about 292 lab hosts" in finding.detail
    assert "net.ipv4.neigh.default.gc_thresh3=8192" in finding.fix
    assert "net.ipv6.neigh.default.gc_thresh3=8192" in finding.fix
    # The smaller of the two families decides.
    assert "gc_thresh3 2048" in doctor.neighbour_finding(_thresholds(8192, 2048)).detail


def test_raised_neighbour_tables_are_enough():
    finding = doctor.neighbour_finding(_thresholds(8192, 8192))
    assert finding.ok and "about 2340 lab hosts" in finding.detail


def test_unreadable_neighbour_tables_are_not_a_failure():
    def unreadable(path: Path) -> str:
        raise PermissionError(path)
    finding = doctor.neighbour_finding(unreadable)
    assert finding.ok and "not known" in finding.detail
