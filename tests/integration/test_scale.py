"""Two hundred hosts: six networks in a chain of five routers, 100 servers cycling through
every built-in kind (tcp-echo, udp-echo, tls-echo, http, https, udp-listener, raw-listener,
dns) and 100 clients spread over them, 500 checks (each client against 5 servers, most
through one router or more), brought up, checked on both sides and taken down through the
CLI, as a user would. Nothing of the lab may be left.

The lab is bench/scale.py's `scale_lab` at two thirds of the size `make bench` times
(300 hosts, 1,500 checks). The times are printed, never asserted.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from labctl.engines.factory import read_lab

from ..conftest import bench_scale
from .conftest import leftovers

pytestmark = pytest.mark.integration

SERVERS = CLIENTS = 100
PER_CLIENT = 5


def _cli(*args: str, timeout: float) -> tuple[float, subprocess.CompletedProcess]:
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "labctl", *args], capture_output=True, text=True,
                            timeout=timeout)
    return time.perf_counter() - started, result


def test_two_hundred_hosts_of_every_kind_through_five_routers(engine, image, tmp_path: Path, capsys):
    scale = bench_scale()
    plan = scale.scale_lab("itest-scale", 220, SERVERS, CLIENTS, PER_CLIENT)
    path = tmp_path / "lab.yaml"
    path.write_text(plan.yaml())
    lab = read_lab(path)
    topology = lab.topology
    count = CLIENTS * PER_CLIENT
    assert len(lab.checks) == count
    assert sum(1 for host in topology.hosts.values() if not host.router) == SERVERS + CLIENTS
    kinds = {service.kind for host in topology.hosts.values() for service in host.services}
    assert kinds >= set(scale.KINDS), f"every built-in kind serves: {sorted(set(scale.KINDS) - kinds)} missing"
    crossing = sum(1 for check in plan.checks
                   if plan.members[check["from"]] != plan.members[check["to"].split(":")[0]])
    assert crossing >= count * 3 // 4, "most checks must cross a router"
    assert all(check.server.mode != "off" for check in lab.checks), "both sides are checked"

    times: dict[str, float] = {}
    try:
        times["up"], result = _cli("-f", str(path), "up", "--timeout", "900", timeout=1200)
        assert result.returncode == 0, f"labctl up failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        times["check"], result = _cli("-f", str(path), "check", "--json", timeout=900)
        try:
            report = json.loads(result.stdout)
        except ValueError:
            pytest.fail(f"labctl check gave no JSON (exit {result.returncode}):\n"
                        f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
        failures = [f"{item['name']}: {item.get('reason')}" for item in report["checks"] if not item["passed"]]
        times["checks inside"] = report["seconds"]
        assert len(report["checks"]) == count
        assert result.returncode == 0 and not failures, (
            f"{len(failures)} of {count} checks failed; the first: " + "\n".join(failures[:10]))
        # Both sides: every check found its own exchange in its server's transcript.
        one_sided = [item["name"] for item in report["checks"] if not item["server"]]
        assert not one_sided, f"{len(one_sided)} checks have no server-side entry: {one_sided[:10]}"
    finally:
        times["down"], result = _cli("-f", str(path), "down", timeout=900)
        with capsys.disabled():   # shown in every run, passing or not
            print(f"\nscale: {SERVERS + CLIENTS} hosts + 5 routers, 6 networks, {count} checks: "
                  + ", ".join(f"{phase} {seconds:.1f}s" for phase, seconds in times.items()))
    left = leftovers(engine, topology, image)
    if result.returncode != 0:
        # Docker 20.10 can keep a phantom endpoint in a network once its many containers are
        # gone, and refuse to remove it until the engine restarts (moby#43286): then `down`
        # must say exactly that, name the network and how to remove it, and leave nothing else.
        refused = re.findall(r"refuses to remove network (\S+) \(.*has active endpoints\); "
                             r"remove it with 'docker network rm \1'", result.stderr)
        assert result.returncode == 4 and refused, f"labctl down failed:\n{result.stderr[-2000:]}"
        assert set(left) <= {"networks", "networks by name"}, left
        assert set(left.get("networks", [])) <= set(refused), (left, refused)
        return
    assert left == {}
