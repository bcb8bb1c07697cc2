"""Grading with pytest: the `lab` fixture brings lab.yaml (beside this file) up once per
session, with the reference solution in submission/, and tears it down afterwards.
Run: pytest examples/grading. (`labctl grade` runs the same lab against each student's
folder; forged/ is a cheating student's, which tests/integration/test_gallery.py grades.)"""


def test_the_declared_checks_pass(lab):
    for name in ("answers in upper case", "the student's client works from across the router"):
        result = lab.check(name)
        assert result.passed, result.reason


def test_an_ad_hoc_probe_written_in_python(lab):
    result = lab.probe({"from": "far", "to": "server:9000",
                        "tcp": {"send": "mixed Case\n", "expect": "MIXED CASE\n"}})
    assert result.passed, result.reason


def test_a_client_that_only_prints_the_answer_is_not_credited(lab):
    # The student's host may print anything; only what the teacher's server saw during this
    # check's own exchange counts, and an earlier check's line there is not this one's.
    assert lab.check("the student's client works from across the router").passed
    result = lab.probe({"from": "desk", "to": "reference:9000", "run": {"command": "echo SHOUT", "stdout": "SHOUT\n"},
                        "server": {"log": "line 'shout' from {client}\n"}})
    assert not result.passed
    assert "server output" in result.reason, result.reason


def test_udp_through_the_router_is_seen_by_the_server(lab):
    result = lab.probe(from_="far", to="echo:7", udp={"send": "ping", "count": 10})
    assert result.passed, result.reason
    far = str(lab.topology.hosts["far"].address_on("remote"))
    seen = [entry for entry in lab.transcript("echo") if entry["peer"] == far]
    assert len(seen) >= 10


def test_commands_run_on_hosts(lab):
    result = lab.exec("near", "getent hosts server")
    assert result.exit_code == 0
    assert result.stdout.split()[0] == b"10.240.1.10"
