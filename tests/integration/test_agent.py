"""A client host's agent (services/agent.py) runs its checks when asked through the engine,
so a check starts no process in the client; what it cannot answer goes through exec."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from labctl.ops.checks import run_checks
from labctl.names import program

from .conftest import running_text

LAB = """
name: itest-agent
networks:
  net: {subnet: 10.238.0.0/24}
hosts:
  server: {networks: [net], services: [{tcp-echo: {port: 7}}, {http: {port: 80}}]}
  client: {networks: [net]}
checks:
  - {name: echo, from: client, to: server:7, tcp: {send: "hi\\n", expect: "hi\\n"}}
  - {name: web, from: client, to: server:80, http: {path: /health, status: 200}}
  - {name: from the server, from: server, to: server:7, tcp: {send: "x\\n", expect: "x\\n"}}
"""
MIB = 1 << 20


@pytest.fixture(scope="module")
def agent_lab(engine, tmp_path_factory):
    yield from running_text(engine, LAB, tmp_path_factory.mktemp("agent"))


class ExecSpy:
    """Counts the probes labctl starts through exec, per host; the engine is the real one."""

    def __init__(self, engine, monkeypatch):
        self.probes: list[str] = []
        real = engine.exec

        def spied(topology, host, argv):
            if program("probe") in argv:
                self.probes.append(host)
            return real(topology, host, argv)
        monkeypatch.setattr(engine, "exec", spied)


def test_a_client_hosts_checks_start_no_process_in_it(engine, image, agent_lab, monkeypatch):
    spy = ExecSpy(engine, monkeypatch)
    results = run_checks(agent_lab.topology, engine, agent_lab.checks, image)
    assert all(result.passed for result in results), [(r.name, r.reason) for r in results]
    # The server runs its own program (the built-in servers), so its check goes through exec.
    assert spy.probes == ["server"]


def test_checks_asked_at_once_each_get_their_own_answer(engine, image, agent_lab):
    with ThreadPoolExecutor(4) as pool:
        rounds = list(pool.map(lambda _: run_checks(agent_lab.topology, engine, agent_lab.checks[:2], image),
                               range(4)))
    for results in rounds:
        assert [r.passed for r in results] == [True, True], [(r.name, r.reason) for r in results]


def test_a_request_the_agent_cannot_read_is_refused_and_the_check_goes_through_exec(
        engine, image, agent_lab, monkeypatch):
    answer = engine.ask(agent_lab.topology, "client", b"{not json\n", (b"agent ! ",), 10)
    assert answer is not None and answer[0] == b"agent ! " and b"unreadable request" in answer[1]
    spy = ExecSpy(engine, monkeypatch)
    real_ask = engine.ask
    # The request as two writers interleaved would leave it: the agent says it cannot read it.
    monkeypatch.setattr(engine, "ask", lambda topology, host, line, answers, timeout:
                        real_ask(topology, host, line[:40] + b"\n", answers, timeout))
    results = run_checks(agent_lab.topology, engine, agent_lab.checks[:1], image)
    assert results[0].passed, results[0].reason
    assert spy.probes == ["client"]


def test_the_agent_stays_small_between_checks(engine, image, agent_lab):
    """Each request runs in a child that ends with it: the agent itself keeps no more than
    an idle Python (the host's memory as `docker stats` shows it is measured in `make bench`)."""
    run_checks(agent_lab.topology, engine, agent_lab.checks, image)
    script = ("for p in /proc/[0-9]*; do if grep -q agent.pyc $p/cmdline 2>/dev/null && "
              "[ \"$(awk '/^PPid/ {print $2}' $p/status)\" = 1 ]; then "
              "awk '/^RssAnon/ {print $2}' $p/status; fi; done")
    result = engine.exec(agent_lab.topology, "client", ["sh", "-c", script])
    [kib] = result.stdout.split()
    assert int(kib) * 1024 < 5 * MIB, f"the agent holds {int(kib) / 1024:.1f} MiB of its own"
