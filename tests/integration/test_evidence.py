"""A check's evidence comes from what lab hosts cannot replace, on the real engine. Programs
are root in their hosts: here the client host's Python is replaced by a script that prints
a passing observation for every check, and the target's `cat` by one that prints counters
that never move. labctl's probe runs from a helper that only shares the client's network,
and the target's counters are read by a helper in its namespace, so neither forgery counts:
the exchange that fails still fails and those that work still pass."""

from __future__ import annotations

import json

import pytest

from labctl.ops.checks import run_checks

from .conftest import running_text

LAB = """
name: itest-evidence
networks:
  net: {subnet: 10.232.0.0/24}
hosts:
  server: {networks: [net], services: [{tcp-echo: {port: 7}}]}
  client: {networks: [net]}
checks:
  - {name: echo, from: client, to: server:7, tcp: {send: "hi\\n", expect: "hi\\n"}}
  - {name: nothing listens on 9, from: client, to: server:9, tcp: {send: "x", expect: "x"}}
  - {name: ping, from: client, to: server, ping: {count: 2}}
"""
FORGED = [{"id": index, "error": None, "detail": "", "elapsed_ms": 1.0, "local": [["10.232.0.3", 40000]],
           "answers": ["x"], "steps": [{"answer": "eA=="}], "icmp": {"sent": 2, "received": 2, "rtt_ms": [1, 1]}}
          for index in range(8)]


@pytest.fixture(scope="module")
def forged_lab(engine, tmp_path_factory):
    yield from running_text(engine, LAB, tmp_path_factory.mktemp("evidence"))


def test_what_a_host_prints_through_its_own_programs_is_not_evidence(engine, image, forged_lab):
    topology = forged_lab.topology
    forged = "#!/bin/sh\necho '" + json.dumps(FORGED) + "'\n"
    replaced = engine.exec(topology, "client", ["sh", "-c", "printf '%s' \"$0\" > /tmp/python3 && chmod 755 "
                                                "/tmp/python3 && cp /tmp/python3 \"$(readlink -f /usr/bin/python3)\"",
                                                forged])
    assert replaced.exit_code == 0, replaced.stderr
    still = engine.exec(topology, "server", ["sh", "-c", "printf '#!/bin/sh\\necho \"Icmp: InEchos\"\\n"
                                             "echo \"Icmp: 7\"\\n' > /tmp/cat && chmod 755 /tmp/cat && "
                                             "cp /tmp/cat \"$(readlink -f /bin/cat)\""])
    assert still.exit_code == 0, still.stderr
    # The forgeries are in place: the client's python3 now says every check passed.
    assert engine.exec(topology, "client", ["python3", "-c", "x"]).stdout.startswith(b'[{"id": 0')
    results = {r.name: r for r in run_checks(topology, engine, forged_lab.checks, image)}
    assert results["echo"].passed, results["echo"].reason
    assert not results["nothing listens on 9"].passed
    assert "refused" in results["nothing listens on 9"].reason
    assert results["ping"].passed, results["ping"].reason
    assert results["ping"].observed["icmp"]["received"] == 2
