"""`labctl ui` on the real engine, in headless Chromium (Debian's, driven by Playwright): the
default lab's page loads clean and shows every host and network; checks run from the CLI
turn its arrows green and a partition made from the CLI shows, both without a reload and
within the issue's 2 s (a bound given to the waits, not a timing measured); the page's own
buttons run a check, impair a link, stop and start a host, partition, heal and capture; a
terminal on alice runs `hostname` and takes Ctrl-C and a resize; every terminal opens at
once; a request without the token gets 403 and changes nothing; and `labctl grade --ui`
shows four submissions move through their states live, then grades one again.

With LABCTL_UI_SCREENSHOTS set to a folder, the tests save what they saw there: the
topology with a partition and a failed check, a terminal, the class dashboard mid-run.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import textwrap
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import pytest

from labctl.ops import faults, lifecycle

from .conftest import default_lab_copy, load, quiet, run_cli

pytest.importorskip("starlette")
pytest.importorskip("playwright")

LIVE = 2_000        # ms: the bound for a change made elsewhere to show on the page
ACTION = 120_000    # ms: an operation the page asked for (a host's restart, an impairment) to be done
STARTED = 60        # s: the server to print its address (it binds before printing: no clock involved)
SHOTS = os.environ.get("LABCTL_UI_SCREENSHOTS")


def screenshot(page, name: str, full_page: bool = False) -> None:
    """Keep what the page shows now, where LABCTL_UI_SCREENSHOTS says; nowhere otherwise."""
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SHOTS) / name), full_page=full_page)


class Process:
    """A labctl command serving a page: its output read as it comes, line by line."""

    def __init__(self, *args: str, cwd: Path | None = None):
        self.popen = subprocess.Popen([sys.executable, "-m", "labctl", *args], stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True, cwd=cwd)
        self.lines: queue.Queue[tuple[str, str]] = queue.Queue()
        self.said: list[str] = []
        for name, stream in (("out", self.popen.stdout), ("err", self.popen.stderr)):
            threading.Thread(target=self._read, args=(name, stream), daemon=True).start()

    def _read(self, name: str, stream) -> None:
        for line in stream:
            self.said.append(line)
            self.lines.put((name, line.rstrip("\n")))
        self.lines.put((name, ""))

    def wait_for(self, stream: str, start: str, timeout: float = STARTED) -> str:
        """The first line of `stream` ("out" or "err") starting with `start`."""
        ended = 0
        while True:
            try:
                name, line = self.lines.get(timeout=timeout)
            except queue.Empty:
                raise AssertionError(f"no line starting {start!r} within {timeout}s: {''.join(self.said)}") from None
            if name == stream and line.startswith(start):
                return line
            if line == "" and self.popen.poll() is not None:
                ended += 1
                if ended == 2:
                    raise AssertionError(f"labctl ended ({self.popen.returncode}) before {start!r}: "
                                         + "".join(self.said))

    def stop(self) -> int:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGINT)
        try:
            return self.popen.wait(timeout=120)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            return self.popen.wait()


@dataclass
class Served:
    act: str            # the page's address with the act token
    view: str           # ... with the view token
    base: str           # http://127.0.0.1:PORT/
    token: str


def served_from(act: str, view: str) -> Served:
    base, _, query = act.partition("?")
    return Served(act, view, base, query.removeprefix("token="))


# -- the lab, its server, the browser ---------------------------------------------------

@pytest.fixture(scope="module")
def campus(engine, image, tmp_path_factory):
    folder = tmp_path_factory.mktemp("ui")
    lab = load(default_lab_copy(folder, "itest-ui", 174))
    lifecycle.up(lab.topology, engine, quiet)
    yield lab
    lifecycle.down(lab.topology, engine, quiet)


@pytest.fixture(scope="module")
def server(campus) -> Iterator[Served]:
    process = Process("-f", str(campus.file), "ui", "--port", "0")
    try:
        act = process.wait_for("out", "http://127.0.0.1:")
        view = process.wait_for("out", "http://127.0.0.1:")
        yield served_from(act, view)
    finally:
        assert process.stop() == 0, "".join(process.said)


@pytest.fixture(scope="module")
def chromium_browser():
    from playwright.sync_api import sync_playwright

    from . import browser
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=browser.chromium(), args=browser.FLAGS)
        try:
            yield launched
        finally:
            launched.close()


class Page:
    """A browser tab and every error its console or its scripts reported."""

    def __init__(self, chromium_browser, width: int = 1400, height: int = 1000):
        self.context = chromium_browser.new_context(viewport={"width": width, "height": height}, accept_downloads=True)
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.page.on("console", lambda message: self.errors.append(message.text) if message.type == "error" else None)
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))

    def wait(self, predicate: str, arg: Any = None, timeout: float = LIVE) -> Any:
        # A function, not an expression: the page's Content-Security-Policy forbids eval.
        return self.page.wait_for_function(predicate, arg=arg, timeout=timeout).json_value()

    def close(self) -> None:
        self.context.close()


@pytest.fixture(scope="module")
def topology(chromium_browser, server) -> Iterator[Page]:
    """The topology page, opened once: every test after the first sees it change in place."""
    opened = Page(chromium_browser)
    opened.page.goto(server.act)
    opened.wait("() => document.body.dataset.ready === 'true' && document.body.dataset.events === 'live'",
                timeout=30_000)
    # Gone if the page ever reloaded.
    opened.page.evaluate("() => { window.labctlTestMark = 'not reloaded'; }")
    yield opened
    opened.close()


def not_reloaded(page: Page) -> None:
    assert page.page.evaluate("() => window.labctlTestMark") == "not reloaded"


def check_row(page: Page, name: str) -> dict[str, str]:
    return page.page.evaluate("(name) => Object.assign({}, Array.from(document.querySelectorAll('tr[data-check]'))"
                              ".find((row) => row.dataset.check === name).dataset)", name)


def host_row(page: Page, name: str) -> dict[str, str]:
    return page.page.evaluate("(name) => Object.assign({}, Array.from(document.querySelectorAll('tr[data-host]'))"
                              ".find((row) => row.dataset.host === name).dataset)", name)


ROW = "(name, kind) => Array.from(document.querySelectorAll(`tr[data-${kind}]`)).find((r) => r.dataset[kind] === name)"


# -- the topology page ------------------------------------------------------------------

def test_the_page_shows_every_host_and_network_with_no_console_error(campus, topology, server, chromium_browser):
    page = topology.page
    topology_ = campus.topology
    nodes = set(page.evaluate("() => labctlGraph.nodes().map((node) => node.id())"))
    assert nodes == {f"h:{name}" for name in topology_.hosts} | {f"n:{name}" for name in topology_.networks}
    assert page.evaluate("() => labctlGraph.nodes('.router').map((node) => node.data('name'))") == ["gw"]
    # One arrow per check, from its client to its server (a wire check watches its network).
    arrows = page.evaluate("() => labctlGraph.edges('.check').map((e) => [e.data('name'), e.source().id(), "
                           "e.target().id()])")
    assert {name for name, _, _ in arrows} == {check.name for check in campus.checks}
    assert ["tcp echo", "h:alice", "h:echo"] in arrows
    assert ["tls is encrypted on the wire", "n:dmz", "n:dmz"] in arrows
    rows = page.evaluate("() => Array.from(document.querySelectorAll('tr[data-host]')).map((row) => "
                         "[row.dataset.host, row.dataset.state, row.innerText])")
    assert [name for name, _, _ in rows] == list(topology_.hosts)
    assert all(state == "running" for _, state, _ in rows), rows
    alice = next(text for name, _, text in rows if name == "alice")
    assert "10.174.1." in alice and "fd00:174:1::" in alice      # both families
    assert "tcp-echo:7" in next(text for name, _, text in rows if name == "echo")
    assert page.inner_text("#lab-name") == "itest-ui"
    assert topology.errors == []

    # The address that only watches shows the same page, without a single control that acts.
    watching = Page(chromium_browser)
    try:
        watching.page.goto(server.view)
        watching.wait("() => document.body.dataset.ready === 'true'", timeout=30_000)
        assert not watching.page.is_visible("#run-all") and not watching.page.is_visible("#impair-form")
        assert watching.page.evaluate("() => document.querySelectorAll('tr[data-host]').length") == len(topology_.hosts)
        assert watching.errors == []
    finally:
        watching.close()


def test_checks_run_from_the_cli_turn_the_arrows_green_without_a_reload(campus, topology):
    before = {check.name: int(check_row(topology, check.name)["updates"]) for check in campus.checks}
    ran = run_cli("-f", str(campus.file), "check")
    assert ran.returncode == 0, ran.stdout + ran.stderr
    topology.wait("(before) => Array.from(document.querySelectorAll('tr[data-check]')).every((row) => "
                  "row.dataset.result === 'pass' && Number(row.dataset.updates) > before[row.dataset.check])",
                  arg=before)
    assert topology.page.evaluate("() => labctlGraph.edges('.check').every((edge) => edge.hasClass('pass') "
                                  "&& edge.style('line-color') === 'rgb(46,158,79)')")
    not_reloaded(topology)
    assert topology.errors == []


def test_a_button_on_the_page_runs_a_check_and_its_result_appears(topology):
    before = int(check_row(topology, "udp echo")["updates"])
    topology.page.click("tr[data-check='udp echo'] button[data-run]")
    topology.wait(f"() => {{ const row = ({ROW})('udp echo', 'check'); return row.dataset.running === 'false' "
                  f"&& Number(row.dataset.updates) > {before}; }}", timeout=ACTION)
    assert check_row(topology, "udp echo")["result"] == "pass"
    assert topology.page.inner_text("#message") == "1 checks: 1 passed, 0 failed"
    not_reloaded(topology)
    assert topology.errors == []


def test_a_partition_from_the_cli_shows_and_a_check_fails_through_it(campus, topology):
    cli = ["-f", str(campus.file)]
    made = run_cli(*cli, "partition", "alice", "--", "web")
    assert made.returncode == 0, made.stderr
    try:
        topology.wait("() => labctlGraph.edges('.partition').some((edge) => "
                      "edge.source().id() === 'h:alice' && edge.target().id() === 'h:web')")
        # The host's faults come with the lab read again, right after.
        topology.wait(f"() => ({ROW})('alice', 'host').dataset.faults.includes('partitioned from web')",
                      timeout=30_000)
        # Through the partition, the page's own button runs a check that now fails, and why.
        topology.page.click("tr[data-check='web health via the router'] button[data-run]")
        topology.wait(f"() => ({ROW})('web health via the router', 'check').dataset.result === 'fail'",
                      timeout=ACTION)
        reason = topology.page.inner_text("tr[data-check='web health via the router'] td.reason")
        assert reason and "1 checks: 0 passed, 1 failed" in topology.page.inner_text("#message")
        assert topology.page.evaluate("() => labctlGraph.getElementById('c:web health via the router')"
                                      ".hasClass('fail')")
        screenshot(topology.page, "topology-partition-failed-check.png", full_page=True)
        # Healed from the page: the cut goes, and the check passes again.
        topology.page.click("#heal")
        topology.wait("() => labctlGraph.edges('.partition').length === 0", timeout=ACTION)
        topology.wait(f"() => ({ROW})('alice', 'host').dataset.faults === ''", timeout=30_000)
    finally:
        run_cli(*cli, "heal")
    topology.page.click("tr[data-check='web health via the router'] button[data-run]")
    topology.wait(f"() => ({ROW})('web health via the router', 'check').dataset.result === 'pass'", timeout=ACTION)
    not_reloaded(topology)
    assert topology.errors == []


def test_the_page_impairs_a_link_stops_a_host_and_captures(campus, engine, topology):
    page = topology.page
    # Impair alice's link, then clear it.
    page.select_option("#impair-target", "alice:lan")
    page.fill("#impair-delay", "40ms")
    page.click("#impair-apply")
    topology.wait("() => labctlGraph.getElementById('a:alice:lan').hasClass('impaired')", timeout=ACTION)
    assert "delay 40ms" in page.evaluate("() => labctlGraph.getElementById('a:alice:lan').data('label')")
    page.click("#impair-clear")
    topology.wait("() => !labctlGraph.getElementById('a:alice:lan').hasClass('impaired')", timeout=ACTION)

    # Stop bob and start it again, from its row.
    page.click("tr[data-host='bob'] button[data-host-action='stop']")
    topology.wait(f"() => ({ROW})('bob', 'host').dataset.state === 'exited'", timeout=ACTION)
    # The engine says a host died a moment before it calls it exited: the action's answer is the mark.
    topology.wait("() => document.getElementById('message').textContent === 'bob: exited'", timeout=ACTION)
    assert faults.state_of(campus.topology, engine, "bob") == "exited"
    page.click("tr[data-host='bob'] button[data-host-action='start']")
    topology.wait(f"() => ({ROW})('bob', 'host').dataset.state === 'running'", timeout=ACTION)
    topology.wait("() => document.getElementById('message').textContent === 'bob: running'", timeout=ACTION)

    # A capture on the DMZ while a check crosses it, stopped, and its pcap downloaded.
    page.select_option("#capture-target", "dmz")
    page.fill("#capture-filter", "tcp port 7")
    page.click("#capture-start")
    topology.wait("() => document.querySelector('#captures li[data-running=\"true\"]') !== null", timeout=ACTION)
    before = int(check_row(topology, "tcp echo")["updates"])
    page.click("tr[data-check='tcp echo'] button[data-run]")
    topology.wait(f"() => Number(({ROW})('tcp echo', 'check').dataset.updates) > {before}", timeout=ACTION)
    page.click("#captures li[data-running='true'] button[data-stop-capture]")
    topology.wait("() => document.querySelector('#captures a[data-download]') !== null", timeout=ACTION)
    with page.expect_download() as downloading:
        page.click("#captures a[data-download]")
    pcap = Path(downloading.value.path()).read_bytes()
    assert pcap[:4] in (b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4", b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d",
                        b"\x0a\x0d\x0d\x0a"), pcap[:16]
    assert len(pcap) > 100      # the handshake and the echo, not an empty file
    not_reloaded(topology)
    assert topology.errors == []


# -- terminals --------------------------------------------------------------------------

LINES = """([host]) => { const buffer = labctlTerminals[host].term.buffer.active; const lines = [];
  for (let i = 0; i < buffer.length; i++) lines.push(buffer.getLine(i).translateToString(true).trim());
  return lines; }"""


def wait_line(tab: Page, host: str, line: str, timeout: float = 30_000) -> None:
    tab.wait(f"([host, line]) => ({LINES})([host]).includes(line)", arg=[host, line], timeout=timeout)


def test_a_terminal_on_alice_runs_hostname_takes_ctrl_c_and_resizes(chromium_browser, server):
    tab = Page(chromium_browser, 1000, 700)
    try:
        tab.page.goto(f"{server.base}host/alice?token={server.token}")
        tab.wait("() => document.body.dataset.status === 'open'", timeout=30_000)
        tab.page.click("#term")
        tab.page.keyboard.type("hostname\n")
        wait_line(tab, "alice", "alice")
        rows, cols = tab.page.evaluate("() => [labctlTerminals.alice.term.rows, labctlTerminals.alice.term.cols]")
        tab.page.keyboard.type("stty size\n")
        wait_line(tab, "alice", f"{rows} {cols}")          # the host's terminal is the page's size
        # The program says it has started, so Ctrl-C finds it in the foreground.
        tab.page.keyboard.type("echo sl''eeping; sleep 60\n")
        wait_line(tab, "alice", "sleeping")
        tab.page.keyboard.press("Control+C")
        tab.page.keyboard.type("echo after-$((6 * 7))\n")
        wait_line(tab, "alice", "after-42", timeout=20_000)  # long before the minute is up
        screenshot(tab.page, "terminal-alice.png")
        # A smaller window: the fit addon resizes the terminal, and the host's follows.
        tab.page.set_viewport_size({"width": 700, "height": 450})
        tab.wait(f"() => labctlTerminals.alice.term.cols < {cols}")
        rows, cols = tab.page.evaluate("() => [labctlTerminals.alice.term.rows, labctlTerminals.alice.term.cols]")
        tab.page.keyboard.type("clear; stty size\n")
        wait_line(tab, "alice", f"{rows} {cols}")
        assert tab.errors == []
    finally:
        tab.close()


def test_a_page_opens_a_terminal_on_every_host(campus, chromium_browser, server):
    tab = Page(chromium_browser, 1400, 1000)
    try:
        tab.page.goto(f"{server.base}terminals?token={server.token}")
        hosts = sorted(campus.topology.hosts)
        tab.wait("(count) => Object.keys(labctlTerminals).length === count && "
                 "Object.values(labctlTerminals).every((t) => t.status === 'open')", arg=len(hosts), timeout=60_000)
        assert sorted(tab.page.evaluate("() => Object.keys(labctlTerminals)")) == hosts
        tab.page.click("section.pane[data-host='bob'] .term")
        tab.page.keyboard.type("hostname\n")
        wait_line(tab, "bob", "bob")
        links = tab.page.evaluate("() => Array.from(document.querySelectorAll('section.pane h2 a'), (a) => a.href)")
        assert f"{server.base}host/bob?token={server.token}" in links      # each host's stable address
        assert tab.errors == []
    finally:
        tab.close()


# -- the token --------------------------------------------------------------------------

def request(url: str, method: str = "GET", body: bytes | None = None,
            headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    asked = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(asked, timeout=60) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as refused:
        return refused.code, refused.read()


def test_a_request_without_the_token_gets_403_and_changes_nothing(campus, engine, server):
    base = server.base
    partition = json.dumps({"sides": [["alice"], ["web"]]}).encode()
    json_body = {"Content-Type": "application/json"}
    for method, path, body in (("GET", "", None), ("GET", "api/lab", None), ("GET", "api/events", None),
                               ("GET", "static/app.js", None), ("GET", "host/alice", None),
                               ("POST", "api/hosts/alice/stop", b"{}"), ("POST", "api/partition", partition),
                               ("POST", "api/checks", b"{}")):
        for token in ("", "?token=wrong"):
            assert request(f"{base}{path}{token}", method, body, json_body) == (403, b""), (method, path, token)
    # A token that only watches, or the right one from another site's page: refused too.
    status, said = request(f"{base}api/hosts/alice/stop?token={server.view.partition('token=')[2]}", "POST", b"{}")
    assert (status, json.loads(said)) == (403, {"error": "this token may only watch"})
    status, _ = request(f"{base}api/partition?token={server.token}", "POST", partition,
                        {**json_body, "Origin": "http://elsewhere.example"})
    assert status == 403
    # A terminal without the token is refused before any shell opens.
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect
    with pytest.raises(InvalidStatus) as refused:
        connect(base.replace("http://", "ws://") + "ws/terminal/alice", open_timeout=30).close()
    assert refused.value.response.status_code == 403
    # Nothing changed: alice runs, nothing is partitioned.
    assert faults.state_of(campus.topology, engine, "alice") == "running"
    status, lab = request(f"{base}api/lab?token={server.token}")
    lab = json.loads(lab)
    assert status == 200 and lab["partitions"] == []
    assert {host["name"]: (host["state"], host["faults"]) for host in lab["hosts"]}["alice"] == ("running", [])


# -- the class dashboard ----------------------------------------------------------------

GRADE_LAB = """
name: itest-uigrade
networks:
  room: {subnet: 10.113.1.0/24}
hosts:
  server:
    networks: [room]
    files: ["./submission/server.py:/exercise/server.py"]
    command: python3 -u /exercise/server.py
    ready: {tcp: 9000}
  student: {networks: [room]}
checks:
  - name: upper case
    from: student
    to: server:9000
    timeout: 2s
    tcp: {send: "hello\\n", expect: "HELLO\\n"}
"""

SERVE = textwrap.dedent("""
    import socket
    def serve(transform):
        listener = socket.create_server(("", 9000))
        while True:
            conn, _ = listener.accept()
            with conn:
                data = conn.recv(1024)
                if data:
                    conn.sendall(transform(data))
""")
STUDENTS = {"ada": "serve(bytes.upper)", "bea": "serve(lambda data: data)", "cal": "serve(bytes.upper)",
            "dee": "serve(bytes.lower)"}

# Each row's states in the order the page showed them, recorded in the page as they change.
RECORD = """() => {
  window.seen = {};
  const note = () => document.querySelectorAll('#submissions tr[data-student]').forEach((row) => {
    const states = window.seen[row.dataset.student] = window.seen[row.dataset.student] || [];
    if (states[states.length - 1] !== row.dataset.state) states.push(row.dataset.state);
  });
  note();
  new MutationObserver(note).observe(document.getElementById('submissions'),
    {subtree: true, childList: true, attributes: true, attributeFilter: ['data-state']});
}"""


def test_a_grade_of_four_submissions_shows_each_row_live_on_the_dashboard(engine, image, tmp_path,
                                                                         chromium_browser):
    (tmp_path / "lab.yaml").write_text(GRADE_LAB)
    (tmp_path / "submission").mkdir()
    (tmp_path / "submission" / "server.py").write_text(SERVE + STUDENTS["ada"] + "\n")
    for student, line in STUDENTS.items():
        (tmp_path / "class" / student).mkdir(parents=True)
        (tmp_path / "class" / student / "server.py").write_text(SERVE + line + "\n")
    process = Process("-f", str(tmp_path / "lab.yaml"), "grade", str(tmp_path / "class"), "--parallel", "2",
                      "--timeout", "60", "--out", str(tmp_path / "out"), "--ui", "--port", "0")
    tab = Page(chromium_browser, 1300, 600)
    try:
        line = process.wait_for("err", "labctl: the class dashboard: ", timeout=120)
        act = line.split("the class dashboard: ", 1)[1].split(" ", 1)[0]
        tab.page.goto(act)
        tab.page.evaluate(RECORD)
        tab.wait("() => document.body.dataset.events === 'live'", timeout=30_000)
        # Mid-run: some submissions graded while others are still on their way (or, should the
        # run outpace the page, all of them: the states it passed through are asserted below).
        tab.wait("() => { const states = Array.from(document.querySelectorAll('#submissions tr[data-student]'), "
                 "(row) => row.dataset.state); const graded = states.filter((s) => s === 'graded').length; "
                 "return graded === 4 || (graded >= 1 && states.length === 4); }", timeout=120_000)
        screenshot(tab.page, "dashboard-mid-run.png")
        tab.wait("() => document.querySelectorAll('#submissions tr[data-state=\"graded\"]').length === 4 "
                 "&& document.body.dataset.active === 'false'", timeout=300_000)
        seen = tab.page.evaluate("() => window.seen")
        assert sorted(seen) == sorted(STUDENTS)
        for student, states in seen.items():
            # Each row moved on the open page (no reload: the record is the page's own).
            assert states[-1] == "graded" and len(states) >= 2, (student, states)
            assert set(states) <= {"queued", "coming up", "checking", "graded"}, states
        assert any("checking" in states for states in seen.values()), seen
        scores = tab.page.evaluate("() => Object.fromEntries(Array.from(document.querySelectorAll("
                                   "'#submissions tr[data-student]'), (row) => [row.dataset.student, "
                                   "[row.dataset.score, row.dataset.failed]]))")
        assert scores == {"ada": ["1", ""], "bea": ["0", "upper case"], "cal": ["1", ""], "dee": ["0", "upper case"]}

        # Each report is linked once written; it opens.
        process.wait_for("err", "labctl: the dashboard stays at", timeout=120)
        tab.wait("() => document.querySelectorAll('#submissions a[data-report]').length === 4", timeout=30_000)
        report = tab.page.evaluate("() => document.querySelector('#submissions tr[data-student=\"bea\"] "
                                   "a[data-report]').href")
        status, page = request(report)
        assert status == 200 and b"upper case" in page

        # One student graded again from the page: the row goes round again, live.
        tab.page.evaluate("() => { window.seen.bea = ['graded']; }")
        tab.page.click("#submissions tr[data-student='bea'] button[data-regrade]")
        tab.wait("() => window.seen.bea.length > 2 && window.seen.bea[window.seen.bea.length - 1] === 'graded'",
                 timeout=300_000)
        assert "checking" in tab.page.evaluate("() => window.seen.bea")
        assert tab.errors == []
    finally:
        tab.close()
        code = process.stop()
    assert code == 0, "".join(process.said)
    assert not [name for name in (network.name for network in engine.client.networks.list())
                if "itest-uigrade" in name]
