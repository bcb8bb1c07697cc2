"""Every point of the check vocabulary on the real engine, each shown to fail when the
exchange does not happen as declared."""

from __future__ import annotations

import copy
import xml.etree.ElementTree as ET

import pytest

from labctl.ops import lifecycle
from labctl.ops.checks import run_checks

from .conftest import REPO, leftovers, quiet, run_cli, running_copy

VOCAB = REPO / "tests" / "integration" / "labs" / "vocab"


@pytest.fixture(scope="module")
def vocab(engine, tmp_path_factory):
    yield from running_copy(engine, VOCAB, tmp_path_factory.mktemp("vocab"))


def named(lab, name):
    return copy.deepcopy(next(check for check in lab.checks if check.name == name))


def test_every_declared_check_passes(engine, vocab):
    results, _ = lifecycle.check(vocab, engine)
    failures = [(r.name, r.reason) for r in results if not r.passed]
    assert not failures
    by_name = {r.name: r for r in results}
    assert by_name["silence is a timeout"].observed["error"] == "timeout"
    assert by_name["a reset is a reset"].observed["error"] == "reset"
    assert "certificate required" in by_name["mutual TLS without one is rejected"].observed["detail"]
    assert by_name["https with the lab CA"].observed["tls"]["version"] == "TLSv1.3"
    assert by_name["health under load"].observed["load"]["requests"] == 200
    # The server side was asserted where a built-in server answered.
    assert len(by_name["udp datagrams mostly come back"].server) >= 48
    assert by_name["a file from the lab folder is echoed"].server[0]["preview"] == "payload from a file\n"
    [curl] = by_name["curl from alice shows in the server's transcript"].server
    assert curl["path"] == "/status/201" and curl["peer"] == "10.238.1.2"


def test_a_run_check_fails_when_the_server_never_saw_it(engine, vocab, image):
    # The command succeeds without touching the server, so only the server's side can tell.
    check = named(vocab, "curl from alice shows in the server's transcript")
    check.options.command = ["sh", "-c", "echo 'status 201'"]
    [result] = run_checks(vocab.topology, engine, [check], image)
    assert not result.passed
    assert "the server saw no such exchange from alice (10.238.1.2)" in result.reason


def test_a_client_behind_nat_fails_on_the_server_side(engine, vocab, image):
    check = named(vocab, "echo is quick")
    lan = str(vocab.topology.networks["lan"].subnet)
    nat = ["sh", "-c", "nft add table ip lcnat && nft add chain ip lcnat post "
           "'{ type nat hook postrouting priority 100; }' && "
           f"nft add rule ip lcnat post ip saddr {lan} masquerade"]
    assert engine.run_in_namespace(vocab.topology, "gw", image, nat, cap_add=["NET_ADMIN"]).exit_code == 0
    try:
        [result] = run_checks(vocab.topology, engine, [check], image)
        # The client still got its echo; only the server's side shows the wrong address.
        assert result.observed["error"] is None
        assert not result.passed
        assert "the server saw it from 10.238.2.254, expected alice (10.238.1.2)" in result.reason \
            or "the server saw no such exchange from alice (10.238.1.2); it saw 10.238.2.254" in result.reason
    finally:
        engine.run_in_namespace(vocab.topology, "gw", image, ["nft", "delete", "table", "ip", "lcnat"],
                                cap_add=["NET_ADMIN"])
    [result] = run_checks(vocab.topology, engine, [check], image)
    assert result.passed, result.reason


def test_the_wrong_expected_client_fails(engine, vocab, image):
    check = named(vocab, "echo is quick")
    check.server.mode, check.server.peer = "on", "bob"
    [result] = run_checks(vocab.topology, engine, [check], image)
    assert not result.passed and "expected bob (10.238.1.3)" in result.reason


def test_bounds_that_cannot_hold_fail(engine, vocab, image):
    quick = named(vocab, "echo is quick")
    quick.latency_ms = 0.001
    load_check = named(vocab, "health under load")
    assert load_check.load is not None
    load_check.load.min_throughput = 10 ** 9
    udp = named(vocab, "udp datagrams mostly come back")
    udp.server.count = 51
    results = run_checks(vocab.topology, engine, [quick, load_check, udp], image)
    assert "over the 0ms bound" in results[0].reason
    assert "below 1e+09/s" in results[1].reason
    assert "expected 51" in results[2].reason
    assert not any(r.passed for r in results)


def test_a_stopped_student_server_fails_the_grading(engine, vocab, image):
    graded = named(vocab, "the student's client is graded")
    steps = named(vocab, "chat session in steps")
    assert engine.exec(vocab.topology, "chat", ["pkill", "-STOP", "-f", "chat_server.py"]).exit_code == 0
    try:
        steps.timeout = graded.timeout = 2.0
        results = run_checks(vocab.topology, engine, [graded, steps], image)
        assert not any(r.passed for r in results), [(r.name, r.reason) for r in results]
    finally:
        engine.exec(vocab.topology, "chat", ["pkill", "-CONT", "-f", "chat_server.py"])
    assert all(r.passed for r in run_checks(vocab.topology, engine, [graded, steps], image))


def test_within_waits_for_convergence(engine, vocab, image):
    # A server that comes up a moment after the check starts: the check converges.
    starter = ["sh", "-c", "(sleep 1.5; exec python3 -m http.server 9999) >/dev/null 2>&1 &"]
    late = named(vocab, "headers as JSON")
    late.port, late.target, late.within = 9999, "chat", 15.0
    late.steps[0].expect = None
    late.options.response_headers = {}
    late.options.path = "/"
    late.server.mode = "off"
    without = copy.deepcopy(late)
    without.within = None
    assert engine.exec(vocab.topology, "chat", starter).exit_code == 0
    [first] = run_checks(vocab.topology, engine, [without], image)
    assert not first.passed and "refused" in first.reason
    [result] = run_checks(vocab.topology, engine, [late], image)
    assert result.passed and result.attempts > 1, result.reason


def test_junit_subset_and_transcript_from_the_cli(vocab, tmp_path):
    report = tmp_path / "report.xml"
    result = run_cli("-f", str(vocab.file), "check", "-k", "mutual", "--junit", str(report))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 passed, 0 failed" in result.stdout
    suite = ET.parse(report).getroot().find("testsuite")
    assert suite is not None and suite.get("tests") == "2" and suite.get("failures") == "0"
    assert {case.get("name") for case in suite.findall("testcase")} == {
        "mutual TLS with a lab certificate", "mutual TLS without one is rejected"}
    transcript = run_cli("-f", str(vocab.file), "transcript", "srv", "--tail", "5")
    assert transcript.returncode == 0 and "tls-echo" in transcript.stdout
    assert "CN=alice" in transcript.stdout  # the client certificate the server saw


def test_nothing_is_left(engine, vocab, image):
    lifecycle.down(vocab.topology, engine, quiet)
    assert leftovers(engine, vocab.topology, image) == {}
