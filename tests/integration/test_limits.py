"""Student programs stay in their hosts: a fork bomb and a 10 GiB allocation each fail
only their own host, and the lab's other checks still pass."""

from __future__ import annotations

import time

import pytest

from labctl.ops import lifecycle

from .conftest import leftovers, load, quiet

pytestmark = pytest.mark.integration

LAB = """
name: itest-limits
networks:
  lan: {subnet: 10.238.1.0/24}
hosts:
  bomb: {networks: [lan], limits: {pids: 64}}
  hog: {networks: [lan], limits: {memory: 64m}}
  echo: {networks: [lan], services: [{tcp-echo: {port: 7}}, {udp-echo: {port: 7}}]}
  client: {networks: [lan]}
checks:
  - {name: tcp echo, from: client, to: echo:7, tcp: {send: "hi\\n", expect: "hi\\n"}}
  - {name: udp echo, from: client, to: echo:7, udp: {send: ping, expect: ping}}
"""

FORK_BOMB = """
import os
while True:
    try:
        os.fork()
    except OSError:
        pass
"""


@pytest.fixture
def limited(tmp_path, engine, image):
    (tmp_path / "lab.yaml").write_text(LAB)
    lab = load(tmp_path / "lab.yaml")
    lifecycle.up(lab.topology, engine, quiet)
    yield lab
    lifecycle.down(lab.topology, engine, quiet)
    assert leftovers(engine, lab.topology, image) == {}


def test_a_fork_bomb_and_a_huge_allocation_fail_only_their_hosts(limited, engine):
    topology = limited.topology
    # 10 GiB, every page touched: the kernel stops the program at the host's 64 MiB.
    hog = engine.exec(topology, "hog", ["python3", "-c", "data = b'x' * (10 << 30)"])
    assert hog.exit_code in (137, 1), hog
    states = {state.name: state.state for state in engine.states(topology) if state.role == "host"}
    assert states["hog"] == "running"     # the host lives on; only the program died

    bomb = engine.host_container(topology, "bomb")
    engine.client.api.exec_start(engine.client.api.exec_create(bomb.id, ["python3", "-c", FORK_BOMB])["Id"],
                                 detach=True)
    started, current = time.monotonic(), 0
    while time.monotonic() - started < 60:
        current = engine.client.api.stats(bomb.id, stream=False).get("pids_stats", {}).get("current", 0)
        if current >= 60:
            break
        time.sleep(0.2)  # the bomb's growth shows only in the engine's counters
    assert 60 <= current <= 64, current

    results, _seconds = lifecycle.check(limited, engine)
    assert all(result.passed for result in results), [(r.name, r.reason) for r in results]
