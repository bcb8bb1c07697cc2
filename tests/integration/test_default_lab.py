"""The default lab on the real engine: every check's outcome, traffic really crossing the
router, the CLI verbs, idempotent up, and a down that leaves nothing."""

from __future__ import annotations

import json
import time

import docker
import pytest

from labctl.names import HOST_LABEL, LAB_LABEL, ROLE_LABEL
from labctl.ops import faults, impairments, lifecycle
from labctl.ops.checks import run_checks
from labctl.ops.status import lab_status

from .conftest import default_lab_copy, leftovers, load, quiet, run_cli


@pytest.fixture(scope="module")
def campus(engine, image, tmp_path_factory):
    folder = tmp_path_factory.mktemp("campus")
    path = default_lab_copy(folder, "itest-campus", 231)
    lab = load(path)
    lifecycle.up(lab.topology, engine, quiet)
    yield lab
    lifecycle.down(lab.topology, engine, quiet)


def test_every_check_passes_with_the_outcome_it_declares(engine, campus):
    results, _seconds = lifecycle.check(campus, engine)
    by_name = {result.name: result for result in results}
    assert len(results) == len(campus.checks) >= 6
    failures = [f"{r.name}: {r.reason}" for r in results if not r.passed]
    assert not failures, failures
    # The negative checks pass because the probe saw exactly the error they name.
    assert by_name["wrong CA is rejected"].observed["error"] == "certificate"
    assert "unable to get local issuer certificate" in by_name["wrong CA is rejected"].observed["detail"]
    assert by_name["closed port is refused"].observed["error"] == "refused"
    assert by_name["tls echo with the lab CA"].observed["tls"]["version"] in ("TLSv1.2", "TLSv1.3")
    # Every exchange with a built-in server was also found in that server's transcript.
    for result in results:
        if result.name in ("tcp echo", "udp echo", "web health via the router", "tls echo with the lab CA"):
            assert result.server, result.name
    assert len(by_name["udp echo"].server) == 20


def test_exchanges_cross_the_router_and_fail_without_it(engine, campus, image):
    alice_checks = [check for check in campus.checks if check.source == "alice"
                    and check.expect_error is None]
    for check in alice_checks:
        check.timeout = 1.0
    # The routes to the dmz in both families; the IPv6 echo check needs the IPv6 one.
    routes = [(str(subnet), str(campus.topology.hosts["gw"].address_on("lan", subnet.version)))
              for subnet in campus.topology.networks["dmz"].subnets]
    assert len(routes) == 2 and any(check.family == 6 for check in alice_checks)
    for dmz, _gateway in routes:
        removed = engine.run_in_namespace(campus.topology, "alice", image, ["ip", "route", "del", dmz],
                                          cap_add=["NET_ADMIN"])
        assert removed.exit_code == 0, removed.stderr
    try:
        results = run_checks(campus.topology, engine, alice_checks, image)
        assert results and not any(result.passed for result in results), \
            [(r.name, r.reason) for r in results]
    finally:
        for dmz, gateway in routes:
            restored = engine.run_in_namespace(campus.topology, "alice", image,
                                               ["ip", "route", "replace", dmz, "via", gateway],
                                               cap_add=["NET_ADMIN"])
            assert restored.exit_code == 0, restored.stderr
    assert all(result.passed for result in run_checks(campus.topology, engine, alice_checks, image))


def test_the_server_saw_the_client_from_across_the_router(engine, campus):
    lifecycle.check(campus, engine, names=["tcp echo"])
    transcript = engine.exec(campus.topology, "echo", ["cat", "/var/log/labctl/transcript.jsonl"])
    entries = [json.loads(line) for line in transcript.stdout.decode().splitlines()]
    alice = str(campus.topology.hosts["alice"].address_on("lan"))
    assert any(e["service"] == "tcp-echo" and e["peer"] == alice and e["preview"] == "hello\n"
               for e in entries), entries


def test_hosts_are_unprivileged(engine, campus):
    result = engine.exec(campus.topology, "alice", ["ip", "link", "add", "x0", "type", "dummy"])
    assert result.exit_code != 0 and b"Operation not permitted" in result.stderr


def test_up_is_idempotent(engine, campus):
    before = {s.container: s.state for s in engine.states(campus.topology) if s.role == "host"}
    result = run_cli("-f", str(campus.file), "up")
    assert result.returncode == 0, result.stderr
    after = {s.container: s.state for s in engine.states(campus.topology) if s.role == "host"}
    assert after == before
    ids = {c.id for c in engine.client.containers.list(filters={"label": "io.labctl.lab=itest-campus"})}
    assert len(ids) == len(campus.topology.hosts)


def test_cli_check_status_exec_logs(campus):
    file = str(campus.file)
    result = run_cli("-f", file, "check")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "CLIENT → SERVER" in result.stdout and f"{len(campus.checks)} passed, 0 failed" in result.stdout
    payload = json.loads(run_cli("-f", file, "check", "--json").stdout)
    assert payload["failed"] == 0 and len(payload["checks"]) == len(campus.checks)
    subset = json.loads(run_cli("-f", file, "check", "--json", "-k", "echo").stdout)
    assert {c["name"] for c in subset["checks"]} == {c.name for c in campus.checks if "echo" in c.name}
    status = run_cli("-f", file, "status")
    assert status.returncode == 0 and "web" in status.stdout and "healthy" in status.stdout
    exec_result = run_cli("-f", file, "exec", "alice", "--", "sh", "-c", "hostname; exit 4")
    assert exec_result.returncode == 4 and exec_result.stdout.strip() == "alice"
    logs = run_cli("-f", file, "logs", "web")
    assert "labsvc: serving http:8080, tls-echo:8443" in logs.stdout


def test_a_failing_check_fails_the_command(engine, campus, tmp_path):
    broken = campus.file.read_text().replace('expect: "hello\\n"', 'expect: "goodbye\\n"')
    path = campus.file.parent / "broken.yaml"
    path.write_text(broken)
    result = run_cli("-f", str(path), "check", "tcp echo")
    assert result.returncode == 1
    assert "FAIL" in result.stdout and "expected exactly 'goodbye\\n', got 'hello\\n'" in result.stdout


@pytest.mark.parametrize("scenario, steps", [("udp-loses-tcp-delivers", 5), ("partition", 5)])
def test_default_scenarios_pass_and_leave_the_lab_as_declared(engine, campus, scenario, steps):
    result = run_cli("-f", str(campus.file), "run", scenario)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"scenario '{scenario}': {steps} of {steps} steps passed" in result.stdout
    assert "restoring the lab as its file declares it" in result.stderr
    status = json.loads(run_cli("-f", str(campus.file), "status", "--json").stdout)
    assert [entry["name"] for entry in status if entry["role"] == "net"] == []
    assert all(entry["faults"] == [] for entry in status if entry["role"] == "host")


# Longer than the 30 s interval the healthchecks had: a periodic process of that pace, or
# any faster, shows in it. The one fixed wait here: it measures an absence.
IDLE_WINDOW = 35


def test_an_idle_lab_declares_no_healthcheck_and_runs_nothing_in_its_hosts(engine, campus):
    """`up` confirmed each container's readiness once; sitting idle, the lab starts no
    process in any host or sidecar (no healthcheck, no poller), and `status` runs its probes
    only when asked."""
    label = f"{LAB_LABEL}={campus.name}"
    watch = {"type": "container", "label": label}
    impairments.change(campus.topology, engine, "echo", {"delay": "40ms"}, False, quiet)   # a sidecar runs too
    # The engine's event stream is held open for the whole window: its own client, bounded by that.
    client = docker.from_env(timeout=IDLE_WINDOW + 30)
    try:
        containers = engine.client.api.containers(filters={"label": label})
        assert {c["Labels"].get(ROLE_LABEL) for c in containers} == {"host", "net"}
        declared = {c["Names"][0]: engine.client.api.inspect_container(c["Id"])["Config"].get("Healthcheck")
                    for c in containers}
        assert all(check is None or check.get("Test") == ["NONE"] for check in declared.values()), declared
        start = int(time.time()) + 1
        idle = list(client.events(since=start, until=start + IDLE_WINDOW, filters=watch, decode=True))
        assert [(e["Action"], e["Actor"]["Attributes"].get("name")) for e in idle
                if e["Action"].startswith(("exec_", "health_status"))] == []
        # Asked, status probes the hosts with a program, once each; the same watch sees it.
        asked = int(time.time())
        report = lab_status(campus.topology, engine)
        health = {row.name: row.health for row in report.hosts}
        assert health == {"web": "healthy", "echo": "healthy", "gw": None, "alice": None, "bob": None}, health
        seen = client.events(since=asked, until=int(time.time()) + 1, filters={**watch, "event": "exec_create"},
                             decode=True)
        assert {e["Actor"]["Attributes"].get(HOST_LABEL) for e in seen} == {"web", "echo"}
    finally:
        client.close()
        impairments.change(campus.topology, engine, None, {}, True, quiet)


REACH = """
  - name: the clients reach
    reach: {from: [alice, bob], to: all}
  - name: alice must not reach web
    reach: {from: [alice], to: [web], fail: [[alice, web]]}
"""


def test_a_reach_matrix_reports_each_pair_and_expects_the_partitioned_one_to_fail(engine, campus, image):
    """One ping per pair, one row each. With alice -- web partitioned, that pair must get no
    reply and passes only then; healed, a pair the lab says must fail fails, saying why."""
    text = campus.file.read_text()
    variant = campus.file.parent / "reach.yaml"
    variant.write_text(text.replace("\nchecks:\n", "\nchecks:\n" + REACH.lstrip("\n"), 1))
    lab = load(variant)
    matrix = [check for check in lab.checks if check.name.startswith("the clients reach: ")]
    assert len(matrix) == 8   # alice and bob, each to the four other hosts
    faults.partition(lab.topology, engine, [["alice"], ["web"]], quiet)
    try:
        results = {r.name: r for r in run_checks(lab.topology, engine, matrix, image)}
    finally:
        faults.heal(lab.topology, engine, quiet)
    assert all(result.passed for result in results.values()), \
        [(r.name, r.reason) for r in results.values() if not r.passed]
    assert results["the clients reach: alice → web"].observed["error"] in ("timeout", "unreachable")
    assert results["the clients reach: bob → web"].observed["icmp"]["received"] == 1
    [healed] = run_checks(lab.topology, engine, [results_check(matrix, "alice → web")], image)
    assert healed.passed, healed.reason      # no partition now: alice reaches web again
    [listed] = [check for check in lab.checks if check.name.startswith("alice must not reach web")]
    [refused] = run_checks(lab.topology, engine, [listed], image)
    assert not refused.passed and "expected no reply (listed under fail)" in refused.reason, refused.reason


def results_check(checks, pair: str):
    return next(check for check in checks if check.name.endswith(pair))


def test_the_graph_of_the_running_lab_loads_in_chromium(engine, campus, tmp_path):
    from . import browser
    cli = ["-f", str(campus.file)]
    drawn = run_cli(*cli, "graph", "-o", str(tmp_path / "lab.html"))
    assert drawn.returncode == 0, drawn.stderr
    lifecycle.check(campus, engine, ["tcp echo", "udp echo"])   # their results are drawn
    for step in (["partition", "alice", "--", "web"], ["impair", "bob:lan", "--delay", "40ms"]):
        assert run_cli(*cli, *step).returncode == 0
    try:
        for name in ("status.html", "status.svg"):
            drawn = run_cli(*cli, "graph", "--status", "-o", str(tmp_path / name))
            assert drawn.returncode == 0, drawn.stderr
    finally:
        assert run_cli(*cli, "heal").returncode == 0
        assert run_cli(*cli, "impair", "--clear").returncode == 0
    everything = {f"host_{name}" for name in campus.topology.hosts} | {f"net_{name}" for name in campus.topology.networks}
    for name in ("lab.html", "status.html", "status.svg"):
        page = browser.load(tmp_path / name, tmp_path)
        assert page.errors == [], (name, page.errors)
        assert everything <= page.ids, (name, everything - page.ids)
        assert len(page.screenshot) > 10_000, name
    status = browser.load(tmp_path / "status.html", tmp_path)
    for words in ("partitioned from web", "bob:lan: delay 40ms", "[running]", "tcp echo", "udp echo"):
        assert words in status.text, (words, status.text[:2000])
    svg = (tmp_path / "status.svg").read_text()
    assert svg.count('fill="#c9f2d0"') == len(campus.topology.hosts), "every host drawn as running"
    (tmp_path / "status.png").write_bytes(status.screenshot)


def test_a_shell_on_a_host_through_a_pseudo_terminal(campus):
    import sys

    import pexpect
    child = pexpect.spawn(sys.executable, ["-m", "labctl", "-f", str(campus.file), "shell", "alice"],
                          encoding="utf-8", timeout=30, dimensions=(33, 101))
    try:
        child.expect(r"alice[^\n]*[#$] ")
        child.sendline("hostname; echo $((6 * 7)); stty size")
        child.expect(r"alice\r\n42\r\n33 101\r\n")      # its own terminal, this one's size
        # The program itself says it has started, so the interrupt finds it in the foreground.
        child.sendline("python3 -c 'import time; print(\"sleep\" + \"ing\", flush=True); time.sleep(60)'")
        child.expect("sleeping\r\n")
        child.sendintr()                                    # Ctrl-C reaches the host, not labctl
        child.expect(r"[#$] ", timeout=10)                  # long before the minute is up
        child.sendline("exit 3")
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 3
    ran = run_cli("-f", str(campus.file), "shell", "bob", "--", "sh", "-c", "hostname; exit 4")
    assert ran.returncode == 4 and "bob" in ran.stdout
    refused = run_cli("-f", str(campus.file), "shell", "nobody")
    assert refused.returncode == 2 and "no host 'nobody'" in refused.stderr


def test_inspect_and_status_show_both_families_routes_and_processes(campus):
    alice = campus.topology.hosts["alice"].attachment("lan")
    dmz = campus.topology.networks["dmz"]
    gw = campus.topology.hosts["gw"]
    shown = run_cli("-f", str(campus.file), "inspect", "alice", "--json")
    assert shown.returncode == 0, shown.stderr
    details = json.loads(shown.stdout)
    [eth] = [i for i in details["interfaces"] if i["name"] != "lo"]
    assert f"{alice.address}/24" in eth["addresses"] and f"{alice.address6}/64" in eth["addresses"]
    assert f"{dmz.subnet} via {gw.address_on('lan', 4)} dev eth0" in details["routes"]
    assert f"{dmz.subnet6} via {gw.address_on('lan', 6)} dev eth0" in details["routes"]
    assert any("sleep infinity" in line for line in details["processes"])
    table = run_cli("-f", str(campus.file), "inspect", "web")
    assert table.returncode == 0 and "labsvc" in table.stdout and "ROUTES" in table.stdout
    status = json.loads(run_cli("-f", str(campus.file), "status", "--json").stdout)
    hosts = {entry["name"]: entry for entry in status if entry["role"] == "host"}
    assert hosts["alice"]["addresses"] == {"lan": [str(alice.address), str(alice.address6)]}


def test_down_leaves_nothing(engine, campus, image):
    result = run_cli("-f", str(campus.file), "down")
    assert result.returncode == 0, result.stderr
    assert leftovers(engine, campus.topology, image) == {}
