"""The server of `labctl ui`, through Starlette's TestClient against a fake engine (and fake
operations where the engine would do the work): every route kind refuses a request without
the token (403, empty body, nothing run), a view token on any act route, and a foreign
Origin; /static serves nothing outside its folder and no link; pages are filled escaped;
errors are one line of JSON; act routes take the lab's lock and call the CLI's operations;
the event stream, the terminal, captures and the class dashboard work as the page expects.
The real engine and browser are tests/integration/test_ui.py's."""

from __future__ import annotations

import json
import os
import shutil
import socket
import sys
import tempfile
import threading
import warnings
from pathlib import Path
from typing import Any, Iterator

import pytest

pytest.importorskip("starlette")
pytest.importorskip("httpx")
with warnings.catch_warnings():   # Starlette 1.x would rather run its TestClient on httpx2; httpx works
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from starlette.testclient import TestClient  # noqa: E402
from starlette.websockets import WebSocketDisconnect  # noqa: E402

from labctl.cli.main import main  # noqa: E402
from labctl.engines.base import HostState, Terminal  # noqa: E402
from labctl.engines.factory import read_lab  # noqa: E402
from labctl.errors import LabError, USAGE  # noqa: E402
from labctl.ops import events, lock  # noqa: E402
from labctl.ops.events import Event  # noqa: E402
from labctl.ui import api, captures as captures_module, stream  # noqa: E402
from labctl.ui.app import build_app  # noqa: E402
from labctl.ui.auth import Tokens  # noqa: E402
from labctl.ui.grade import Grading  # noqa: E402
from labctl.ui.served import Served  # noqa: E402

LAB = """
name: uitest
networks:
  lan: {subnet: 10.77.0.0/24, subnet6: "fd00:77::/64"}
hosts:
  alice: {networks: [lan]}
  bob:
    networks: [lan]
    services: [{tcp-echo: {port: 7}}]
checks:
  - name: echo
    from: alice
    to: bob:7
    tcp: {send: hi, expect: hi}
"""

PAGES = {"index.html": "<meta name=\"labctl-token\" content=\"{{ token }}\"><script>var act = {{ can_act }};</script>",
         "terminal.html": "terminal {{ token }}", "terminals.html": "terminals {{ token }}",
         "grade.html": "grade {{ token }}"}


class FakeEngine:
    """Enough of an engine for the server: states, networks, a terminal; it records the rest."""

    def __init__(self) -> None:
        self.terminals: list[tuple[socket.socket, list[tuple[int, int]]]] = []
        self.opened = threading.Event()

    def identity(self) -> str:
        return "ui-unit-test-engine"

    def states(self, topology) -> list[HostState]:
        return [HostState("alice", "host", "c1", "running", None, None),
                HostState("bob", "host", "c2", "paused", None, None)]

    def attached(self, topology, host: str) -> list[str]:
        return list(topology.hosts[host].networks)

    def addresses(self, topology) -> dict:
        return {}

    def events(self, topology):
        class Stream:
            def __iter__(self):
                return iter(())

            def close(self):
                pass
        return Stream()

    def terminal(self, topology, host: str, argv: list[str], environment: dict[str, str]) -> Terminal:
        ours, theirs = socket.socketpair()
        sizes: list[tuple[int, int]] = []
        self.terminals.append((theirs, sizes))
        self.opened.set()
        return Terminal(ours, lambda rows, cols: sizes.append((rows, cols)), lambda: 7)


@pytest.fixture
def folder(monkeypatch) -> Iterator[Path]:
    """The lock folder (and so the event channels): short, so its sockets' paths fit."""
    top = Path(tempfile.mkdtemp(prefix="ui"))
    monkeypatch.setattr(lock, "FOLDER", top / "locks")
    yield top / "locks"
    shutil.rmtree(top, ignore_errors=True)


@pytest.fixture
def static(tmp_path) -> Path:
    place = tmp_path / "static"
    (place / "vendor" / "lib").mkdir(parents=True)
    for name, text in PAGES.items():
        (place / name).write_text(text)
    (place / "app.js").write_text("console.log('hi');")
    (place / "vendor" / "lib" / "lib.js").write_text("var lib;")
    (place / "vendor" / "lib" / "LICENSE").write_text("MIT")
    (place / ".hidden").write_text("secret")
    (tmp_path / "outside.txt").write_text("outside")
    os.symlink(tmp_path / "outside.txt", place / "link.js")
    os.symlink(tmp_path, place / "up")
    return place


@pytest.fixture
def engine() -> FakeEngine:
    return FakeEngine()


@pytest.fixture
def served(write_lab, folder, engine) -> Iterator[Served]:
    path = write_lab(LAB)
    lab = read_lab(path)
    here = Served(lab, engine, lambda: read_lab(path), lambda each: engine)
    yield here
    here.close()


@pytest.fixture
def tokens() -> Tokens:
    return Tokens()


@pytest.fixture
def client(served, tokens, static) -> Iterator[TestClient]:
    with TestClient(build_app(served, tokens, static), base_url="http://127.0.0.1:8765") as each:
        yield each


@pytest.fixture
def calls(monkeypatch) -> list[tuple[Any, ...]]:
    """The operations the act routes call, recorded instead of run."""
    made: list[tuple[Any, ...]] = []
    monkeypatch.setattr(api.faults, "partition", lambda topology, engine, sides, say: made.append(("partition", sides)))
    monkeypatch.setattr(api.faults, "heal", lambda topology, engine, say: made.append(("heal",)) or ["partition a -- b"])
    monkeypatch.setattr(api.faults, "host_action",
                        lambda topology, engine, host, action, say: made.append(("host", host, action)))
    monkeypatch.setattr(api.faults, "state_of", lambda topology, engine, host: "exited")
    monkeypatch.setattr(api.impairments, "change", lambda topology, engine, target, values, clear, say:
                        made.append(("impair", target, values, clear)))

    def check(lab, engine, names=None, pattern=None, deadline=None):
        from labctl.checks.result import CheckResult
        made.append(("check", names))
        return [CheckResult("echo", "alice", "bob", 7, "tcp", False, 1.5, "refused\nby bob")], 0.1
    monkeypatch.setattr(api.lifecycle, "check", check)
    return made


ACT_ROUTES = [("POST", "/api/checks", {}), ("POST", "/api/impair", {"target": "lan", "values": {"delay": "5ms"}}),
              ("POST", "/api/impair/clear", {"target": "lan"}), ("POST", "/api/partition", {"sides": [["alice"], ["bob"]]}),
              ("POST", "/api/heal", {}), ("POST", "/api/hosts/bob/stop", {}),
              ("POST", "/api/captures", {"target": "lan"}), ("POST", "/api/captures/1/stop", {}),
              ("POST", "/api/grade/somebody/regrade", {})]
READ_ROUTES = ["/", "/host/alice", "/terminals", "/grade", "/static/app.js", "/static/vendor/lib/lib.js",
               "/api/lab", "/api/grade", "/api/captures", "/api/captures/1.pcap", "/api/events", "/no/such/route"]


# -- the token --------------------------------------------------------------------------

@pytest.mark.parametrize("token", [None, "", "wrong", "x" * 10_000])
def test_without_the_token_every_route_kind_gets_403_and_an_empty_body_and_nothing_runs(client, calls, token):
    query = {} if token is None else {"token": token}
    for path in READ_ROUTES:
        answer = client.get(path, params=query)
        assert (answer.status_code, answer.content) == (403, b""), path
    for method, path, body in ACT_ROUTES:
        answer = client.request(method, path, params=query, json=body)
        assert (answer.status_code, answer.content) == (403, b""), path
    assert calls == []
    with pytest.raises(Exception) as refused:
        with client.websocket_connect("/ws/terminal/alice" + (f"?token={token}" if token is not None else "")):
            pass
    assert getattr(refused.value, "status_code", None) == 403
    assert getattr(refused.value, "content", None) == b""


def test_the_token_may_come_in_a_header(client, tokens):
    assert client.get("/api/grade", headers={"X-Labctl-Token": tokens.view}).status_code == 200
    assert client.get("/api/grade", headers={"X-Labctl-Token": "wrong"}).status_code == 403


def test_a_view_token_may_watch_but_every_act_route_and_terminal_is_refused(client, tokens, calls, engine):
    for path in ("/", "/api/grade", "/static/app.js", "/api/lab"):
        assert client.get(path, params={"token": tokens.view}).status_code == 200, path
    for method, path, body in ACT_ROUTES:
        answer = client.request(method, path, params={"token": tokens.view}, json=body)
        assert answer.status_code == 403, path
        assert answer.json() == {"error": "this token may only watch"}
    assert calls == []
    with pytest.raises(Exception) as refused:
        with client.websocket_connect(f"/ws/terminal/alice?token={tokens.view}"):
            pass
    assert getattr(refused.value, "status_code", None) == 403
    assert engine.terminals == []


def test_a_foreign_origin_is_refused_on_posts_and_terminals(client, tokens, calls, engine):
    for origin in ("http://evil.example", "null", "http://127.0.0.1:8766", "https://127.0.0.1:8765"):
        answer = client.post("/api/heal", params={"token": tokens.act}, json={}, headers={"Origin": origin})
        assert (answer.status_code, answer.content) == (403, b""), origin
        with pytest.raises(Exception) as refused:
            with client.websocket_connect(f"/ws/terminal/alice?token={tokens.act}", headers={"Origin": origin}):
                pass
        assert getattr(refused.value, "status_code", None) == 403
    assert calls == [] and engine.terminals == []
    same = client.post("/api/heal", params={"token": tokens.act}, json={}, headers={"Origin": "http://127.0.0.1:8765"})
    assert same.status_code == 200 and calls == [("heal",)]


def test_on_loopback_a_request_naming_another_host_is_refused_token_or_not(served, static, folder, calls):
    """DNS rebinding: a page at http://rebound.example:PORT whose name now points at this
    machine is its own origin, so the Origin check passes; its Host header still names it."""
    from labctl.ui.launch import launch
    launched = launch(served.lab, served.engine, served.read, served.open_engine, "127.0.0.1", 0, lambda message: None)
    port = int(launched.base.rsplit(":", 1)[1].strip("/"))
    try:
        with TestClient(launched.app, base_url=launched.base) as client:
            act = {"token": launched.tokens.act}
            for host in (f"rebound.example:{port}", "rebound.example", f"localhost.rebound.example:{port}",
                         f"127.0.0.1.rebound.example:{port}", f"[::ffff:192.0.2.1]:{port}", ""):
                asked = {"Host": host, "Origin": f"http://{host}"}
                for path in ("/", "/api/lab", "/api/events", "/static/app.js"):
                    answer = client.get(path, params=act, headers=asked)
                    assert (answer.status_code, answer.content) == (403, b""), (host, path)
                answer = client.post("/api/heal", params=act, json={}, headers=asked)
                assert (answer.status_code, answer.content) == (403, b""), host
                with pytest.raises(Exception) as refused:
                    with client.websocket_connect(f"/ws/terminal/alice?token={launched.tokens.act}", headers=asked):
                        pass
                assert getattr(refused.value, "status_code", None) == 403
            assert calls == [] and served.engine.terminals == []
            # Its own address, localhost, and another port (an SSH tunnel's) are this machine.
            for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"LocalHost:{port}", "localhost:9000",
                         "127.0.0.1", "[::1]:8765"):
                assert client.get("/api/grade", params=act, headers={"Host": host}).status_code == 200, host
    finally:
        launched.close()


def test_beyond_loopback_the_host_is_not_checked(served, static, folder):
    """Served to other machines, the names it is reached by are not known here: the token
    and the Origin guard it."""
    from labctl.ui.launch import launch
    launched = launch(served.lab, served.engine, served.read, served.open_engine, "0.0.0.0", 0, lambda message: None)
    try:
        with TestClient(launched.app, base_url=launched.base) as client:
            answer = client.get("/api/grade", params={"token": launched.tokens.view}, headers={"Host": "labmachine:1"})
            assert answer.status_code == 200
    finally:
        launched.close()


# -- pages and static files -------------------------------------------------------------

def test_pages_are_filled_with_the_token_escaped_and_what_it_may_do(served, static):
    tokens = Tokens(act='a"<b>&\'', view="v<iew>")
    with TestClient(build_app(served, tokens, static), base_url="http://127.0.0.1:8765") as client:
        page = client.get("/", params={"token": tokens.act})
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert 'content="a&quot;&lt;b&gt;&amp;&#x27;"' in page.text
        assert "var act = true;" in page.text and "{{" not in page.text
        watched = client.get("/", params={"token": tokens.view})
        assert 'content="v&lt;iew&gt;"' in watched.text and "var act = false;" in watched.text
        assert "script-src 'self'" in page.headers["content-security-policy"]
        assert page.headers["cache-control"] == "no-store"
        assert client.get("/host/alice", params={"token": tokens.act}).text == "terminal a&quot;&lt;b&gt;&amp;&#x27;"
        missing = client.get("/host/mallory", params={"token": tokens.act})
        assert missing.status_code == 404 and "mallory" in missing.json()["error"]


@pytest.mark.parametrize("path", ["../outside.txt", "..%2Foutside.txt", "%2e%2e/outside.txt", "vendor/../../outside.txt",
                                  ".hidden", "link.js", "up/outside.txt", "vendor/lib/../../.hidden", "", "vendor",
                                  "%2Fetc%2Fpasswd", "vendor//lib/lib.js", "no-such.js"])
def test_static_serves_nothing_outside_its_folder_no_link_and_no_hidden_file(client, tokens, path):
    answer = client.get(f"/static/{path}", params={"token": tokens.view})
    assert answer.status_code in (404, 403) and b"outside" not in answer.content and b"secret" not in answer.content


def test_static_serves_its_files_with_their_types(client, tokens):
    script = client.get("/static/vendor/lib/lib.js", params={"token": tokens.view})
    assert script.status_code == 200 and script.text == "var lib;"
    assert script.headers["content-type"].startswith("text/javascript")
    assert script.headers["x-content-type-options"] == "nosniff"
    licence = client.get("/static/vendor/lib/LICENSE", params={"token": tokens.view})
    assert licence.headers["content-type"].startswith("text/plain") and licence.text == "MIT"


def test_static_files_ship_in_the_wheel():
    """pyproject's package data carries labctl/ui/static/ with every file under it."""
    project = (Path(__file__).resolve().parents[2] / "pyproject.toml").read_text()
    assert '"labctl.ui"' in project and '"labctl.ui" = ["static/*", "static/**/*"]' in project


# -- the JSON API -------------------------------------------------------------------------

def test_the_lab_as_the_page_draws_it(client, tokens, served):
    served.take(Event("check", "failed", "echo", "uitest", 1000.0, {"reason": "refused", "elapsed_ms": 2.5}))
    lab = client.get("/api/lab", params={"token": tokens.act}).json()
    assert lab["name"] == "uitest" and lab["can_act"] is True
    assert lab["networks"] == [{"name": "lan", "subnet": "10.77.0.0/24", "subnet6": "fd00:77::/64"}]
    hosts = {host["name"]: host for host in lab["hosts"]}
    assert hosts["alice"]["state"] == "running" and hosts["bob"]["state"] == "paused"
    assert hosts["bob"]["services"] == ["tcp-echo:7"] and hosts["bob"]["router"] is False
    assert hosts["alice"]["addresses"]["lan"]["ipv4"].startswith("10.77.0.")
    assert hosts["alice"]["addresses"]["lan"]["ipv6"].startswith("fd00:77::")
    assert lab["impairments"] == [] and lab["partitions"] == []
    assert lab["checks"] == [{"name": "echo", "from": "alice", "to": "bob", "port": 7, "protocol": "tcp",
                              "last": {"passed": False, "reason": "refused", "time": 1000.0, "elapsed_ms": 2.5}}]
    assert client.get("/api/lab", params={"token": tokens.view}).json()["can_act"] is False


def test_the_lab_shows_faults_partitions_and_impairments_in_force(client, tokens, served, engine, monkeypatch):
    from labctl.model.shaping import LiveState, save_live
    topology = served.lab.topology
    save_live(topology, LiveState(changes=[{"target": "bob:lan", "set": {"delay": 0.1, "loss": 0.05}}],
                                  partitions=[[["alice"], ["bob"]]]))
    monkeypatch.setattr(engine, "attached", lambda topology, host: [] if host == "alice" else ["lan"])
    lab = client.get("/api/lab", params={"token": tokens.view}).json()
    assert lab["partitions"] == [[["alice"], ["bob"]]]
    assert lab["impairments"] == [{"target": "bob:lan", "values": {"delay": "100ms", "loss": "5%"}}]
    hosts = {host["name"]: host for host in lab["hosts"]}
    assert hosts["alice"]["faults"] == ["disconnected from lan", "partitioned from bob"]
    assert hosts["bob"]["faults"] == ["partitioned from alice", "lan: delay 100ms loss 5%"]


def test_act_routes_call_the_clis_operations(client, tokens, calls):
    def post(path: str, body: Any) -> Any:
        answer = client.post(path, params={"token": tokens.act}, json=body)
        assert answer.status_code == 200, answer.text
        return answer.json()
    result = post("/api/checks", {"names": ["echo"]})
    assert result["results"] == [{"name": "echo", "passed": False, "reason": "refused\nby bob", "elapsed_ms": 1.5,
                                  "source": "alice", "target": "bob", "port": 7, "protocol": "tcp"}]
    post("/api/checks", {})
    post("/api/impair", {"target": "alice:lan", "values": {"delay": "100ms", "loss": 5}})
    post("/api/impair/clear", {"target": "lan"})
    post("/api/impair/clear", {})
    assert post("/api/partition", {"sides": [["alice"], ["bob"]]}) == {"sides": [["alice"], ["bob"]]}
    assert post("/api/heal", {}) == {"healed": ["partition a -- b"]}
    assert post("/api/hosts/bob/stop", None) == {"host": "bob", "action": "stop", "state": "exited"}
    assert calls == [("check", ["echo"]), ("check", None), ("impair", "alice:lan", {"delay": "100ms", "loss": "5"}, False),
                     ("impair", "lan", {}, True), ("impair", None, {}, True), ("partition", [["alice"], ["bob"]]),
                     ("heal",), ("host", "bob", "stop")]


@pytest.mark.parametrize("path, body, status", [
    ("/api/checks", {"names": ["nope"]}, 404),
    ("/api/checks", {"names": "echo"}, 400),
    ("/api/impair", {"target": "mallory", "values": {"delay": "1ms"}}, 404),
    ("/api/impair", {"target": "lan", "values": {}}, 400),
    ("/api/impair", {"target": "lan", "values": {"delay": ["1ms"]}}, 400),
    ("/api/impair", {"target": 7, "values": {"delay": "1ms"}}, 400),
    ("/api/partition", {"sides": [["alice"], ["mallory"]]}, 404),
    ("/api/partition", {"sides": [["alice"], ["alice"]]}, 400),
    ("/api/partition", {"sides": [["alice"]]}, 400),
    ("/api/partition", {"sides": [[], ["bob"]]}, 400),
    ("/api/hosts/mallory/stop", {}, 404),
    ("/api/hosts/bob/explode", {}, 404),
    ("/api/captures", {"target": "lan", "filter": "x" * 5000}, 400),
    ("/api/captures", {"target": "nowhere"}, 404),
    ("/api/captures/99/stop", {}, 404),
])
def test_bad_input_is_refused_in_one_line_of_json_and_nothing_runs(client, tokens, calls, path, body, status):
    answer = client.post(path, params={"token": tokens.act}, json=body)
    assert answer.status_code == status
    assert set(answer.json()) == {"error"} and "\n" not in answer.json()["error"] and answer.json()["error"]
    assert calls == []


@pytest.mark.parametrize("raw", [b"{", b"[1, 2]", b'"text"', b"\xff\xfe", b"{" * 100_000, b" " + b"x" * 70_000])
def test_a_body_that_is_not_a_json_object_is_400_in_one_line(client, tokens, calls, raw):
    answer = client.post("/api/heal", params={"token": tokens.act}, content=raw)
    assert answer.status_code == 400 and "\n" not in answer.json()["error"]
    assert calls == []


def test_an_operations_failure_is_one_line_with_its_status(client, tokens, monkeypatch):
    def refuse(topology, engine, sides, say):
        raise LabError("the lab is not running;\nrun\x1b[31m 'labctl up'")
    monkeypatch.setattr(api.faults, "partition", refuse)
    answer = client.post("/api/partition", params={"token": tokens.act}, json={"sides": [["alice"], ["bob"]]})
    assert answer.status_code == 400
    assert answer.json()["error"] == "the lab is not running;\\nrun\\x1b[31m 'labctl up'"

    def crash(topology, engine, say):
        raise KeyError("oops")
    monkeypatch.setattr(api.faults, "heal", crash)
    answer = client.post("/api/heal", params={"token": tokens.act}, json={})
    assert answer.status_code == 500 and "\n" not in answer.json()["error"]


def test_an_act_route_holds_the_labs_lock_and_a_busy_lab_is_409(client, tokens, calls, served, monkeypatch):
    seen: list[bool] = []

    def heal(topology, engine, say):
        # Held: a second holder is refused while the operation runs.
        with pytest.raises(LabError, match="is busy"):
            with lock.hold(topology, engine, "another", say, wait=False):
                pass
        seen.append(True)
        return []
    monkeypatch.setattr(api.faults, "heal", heal)
    assert client.post("/api/heal", params={"token": tokens.act}, json={}).status_code == 200 and seen
    with lock.hold(served.lab.topology, served.engine, "up", lambda message: None):
        answer = client.post("/api/partition", params={"token": tokens.act}, json={"sides": [["alice"], ["bob"]]})
    assert answer.status_code == 409
    assert "busy" in answer.json()["error"] and "'up'" in answer.json()["error"] and "--no-wait" not in answer.json()["error"]
    assert [call for call in calls if call[0] == "partition"] == []


# -- the event stream ---------------------------------------------------------------------

class FakeSubscription:
    def __init__(self, happened: list[Event]):
        self.happened, self.closed = happened, False

    def __iter__(self):
        return iter(self.happened)

    def close(self):
        self.closed = True


def test_the_event_stream_says_ready_then_each_event_as_one_line_of_json(client, tokens, monkeypatch):
    made: list[FakeSubscription] = []
    happened = [Event("check", "failed", "echo", "uitest", 5.0, {"reason": "a\nb\u2028c"}),
                Event("host", "exited", "bob", "uitest", 6.0, {"exit_code": 137})]

    def subscribe(topology, engine, engine_events=True):
        assert engine_events and topology.name == "uitest"
        made.append(FakeSubscription(happened))
        return made[-1]
    monkeypatch.setattr(stream, "subscribe", subscribe)
    answer = client.get("/api/events", params={"token": tokens.view})
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/event-stream")
    parts = answer.text.split("\n\n")
    assert parts[0] == "event: ready\ndata: {}"
    assert [json.loads(part.removeprefix("data: ")) for part in parts[1:3]] == [event.as_json() for event in happened]
    assert all(part.count("\n") == 0 for part in parts[1:3]) and parts[3:] == [""]
    assert len(made) == 1 and made[0].closed


def test_past_the_most_pages_watching_a_stream_is_503_and_subscribes_nothing(client, tokens, monkeypatch):
    made: list[FakeSubscription] = []
    monkeypatch.setattr(stream, "subscribe", lambda topology, engine, engine_events=True:
                        made.append(FakeSubscription([])) or made[-1])
    monkeypatch.setattr(stream, "MOST_STREAMS", 2)
    watching = client.app.state.streams   # type: ignore[attr-defined]
    watching.update({FakeSubscription([]), FakeSubscription([])})
    answer = client.get("/api/events", params={"token": tokens.view})
    assert answer.status_code == 503 and "2 pages" in answer.json()["error"] and made == []
    watching.pop()
    assert client.get("/api/events", params={"token": tokens.view}).status_code == 200 and len(made) == 1


def test_a_page_that_does_not_read_holds_a_bounded_backlog_in_bytes():
    import asyncio
    big = Event("check", "failed", "echo", "uitest", 1.0, {"reason": "\u00e9" * 1000})   # 6 kB as sent: \u00e9
    sent = stream.data(big)

    async def pumped() -> tuple[int, list[bytes | None]]:
        backlog = stream.Backlog()
        pump = threading.Thread(target=stream._pump, args=(FakeSubscription([big] * 2000), asyncio.get_running_loop(),
                                                           backlog))
        pump.start()
        await asyncio.get_running_loop().run_in_executor(None, pump.join)   # after every hand-over it queued
        held = backlog.size
        taken: list[bytes | None] = []
        while not taken or taken[-1] is not None:
            taken.append(await backlog.get())
        return held, taken
    held, taken = asyncio.run(pumped())
    assert 0 < held <= stream.MOST_WAITING < 2000 * len(sent)
    assert taken[-1] is None and set(taken[:-1]) == {sent} and len(taken[:-1]) * len(sent) == held


def test_a_page_that_goes_away_closes_its_subscription(served, tokens, static, folder):
    """Through uvicorn itself: the stream ends, and the lab's channel loses its socket, when
    the page closes its connection, with no event to send."""
    import http.client

    from labctl.ui.serve import listen, start
    listener = listen("127.0.0.1", 0)
    server, thread = start(build_app(served, tokens, static), listener)
    try:
        channel = events.channel(served.lab.topology, served.engine)
        connection = http.client.HTTPConnection(*listener.getsockname()[:2], timeout=10)
        connection.request("GET", f"/api/events?token={tokens.view}")
        response = connection.getresponse()
        assert response.status == 200
        assert response.readline() == b"event: ready\n"
        assert len(list(channel.glob("*.sock"))) == 1
        response.readline(), response.readline()
        events.publish(served.lab.topology, served.engine, "fault", "healed", healed=["x"])
        line = response.readline()
        assert json.loads(line.removeprefix(b"data: "))["action"] == "healed"
        connection.sock.shutdown(socket.SHUT_RDWR)
        connection.close()
        for _ in range(500):   # until the server has seen it go (a few event-loop turns)
            if not list(channel.glob("*.sock")) if channel.exists() else True:
                break
            threading.Event().wait(0.01)
        assert not channel.exists() or not list(channel.glob("*.sock"))
    finally:
        server.stop()
        thread.join(10)
        listener.close()


# -- the terminal -------------------------------------------------------------------------

def test_a_terminal_carries_bytes_both_ways_resizes_and_ctrl_c_is_a_byte(client, tokens, engine):
    with client.websocket_connect(f"/ws/terminal/alice?token={tokens.act}&rows=30&cols=100") as page:
        assert engine.opened.wait(10)
        host, sizes = engine.terminals[0][0], engine.terminals[0][1]
        host.sendall(b"alice$ ")
        assert page.receive_bytes() == b"alice$ "
        page.send_bytes(b"sleep 100\r\x03")
        received = b""
        while len(received) < 11:
            received += host.recv(100)
        assert received == b"sleep 100\r\x03"
        page.send_text(json.dumps({"resize": [40, 120]}))
        page.send_text("not json")
        page.send_bytes(b"!")
        assert host.recv(10) == b"!"   # the page's frames are taken in turn: the resize is done
        host.sendall(b"bye")
        assert page.receive_bytes() == b"bye"
        assert sizes == [(30, 100), (40, 120)]
        host.close()   # the shell ends
        assert json.loads(page.receive_text()) == {"exit": 7}
        with pytest.raises(WebSocketDisconnect):
            page.receive_bytes()


def test_a_resize_past_any_number_is_the_default_size_not_the_end_of_the_terminal(client, tokens, engine):
    with client.websocket_connect(f"/ws/terminal/alice?token={tokens.act}") as page:
        assert engine.opened.wait(10)
        host, sizes = engine.terminals[0]
        page.send_text('{"resize": [1e999, -1e999]}')   # JSON's infinities
        page.send_bytes(b"!")
        assert host.recv(10) == b"!"
        assert sizes[-1] == (24, 80)


def test_a_terminal_on_no_such_host_says_so_and_closes(client, tokens, engine):
    with client.websocket_connect(f"/ws/terminal/mallory?token={tokens.act}") as page:
        assert "mallory" in json.loads(page.receive_text())["error"]
        with pytest.raises(WebSocketDisconnect) as closed:
            page.receive_bytes()
        assert closed.value.code == 4404
    assert engine.terminals == []


def test_closing_the_page_closes_the_shells_connection(client, tokens, engine):
    with client.websocket_connect(f"/ws/terminal/alice?token={tokens.act}") as page:
        page.send_bytes(b"x")
        assert engine.opened.wait(10)
        host = engine.terminals[0][0]
        assert host.recv(10) == b"x"
    host.settimeout(10)
    assert host.recv(10) == b""   # the server closed its end


# -- captures -----------------------------------------------------------------------------

class FakeCapture:
    def __init__(self, topology, engine, image, target, expression=None, deadline=0.0):
        self.target, self.expression, self.data, self.stopped = target, expression, b"", False

    def start(self):
        return self

    def stop(self):
        self.stopped = True
        self.data = b"PCAPDATA"
        return self.data

    @property
    def packets(self):
        return [1, 2, 3]


def test_a_capture_starts_stops_and_downloads(client, tokens, monkeypatch):
    monkeypatch.setattr(captures_module, "Capture", FakeCapture)
    monkeypatch.setattr(captures_module, "host_tag", lambda: "image")
    act = {"token": tokens.act}
    started = client.post("/api/captures", params=act, json={"target": "lan", "filter": "tcp port 7"})
    assert started.json() == {"id": "1"}
    assert client.get("/api/captures/1.pcap", params=act).status_code == 404   # still running
    listed = client.get("/api/captures", params={"token": tokens.view}).json()["captures"]
    assert listed == [{"id": "1", "target": "lan", "filter": "tcp port 7", "running": True, "packets": 0, "bytes": 0,
                       "download": None}]
    stopped = client.post("/api/captures/1/stop", params=act, json={})
    assert stopped.json() == {"packets": 3, "bytes": 8, "download": "api/captures/1.pcap"}
    assert client.post("/api/captures/1/stop", params=act, json={}).status_code == 404
    pcap = client.get("/api/captures/1.pcap", params={"token": tokens.view})
    assert pcap.content == b"PCAPDATA" and pcap.headers["content-type"] == "application/vnd.tcpdump.pcap"
    assert pcap.headers["content-disposition"] == 'attachment; filename="capture-1-lan.pcap"'


# -- the class dashboard ------------------------------------------------------------------

def grade_events() -> list[Event]:
    def event(action: str, subject: str = "", **detail: Any) -> Event:
        return Event("grade", action, subject, "uitest", 1.0, detail)
    return [event("started", submissions=2), event("queued", "ann", number=1), event("queued", "<b>bo", number=2),
            event("coming up", "ann", number=1, instance="uitest-grade1"),
            event("checking", "ann", number=1, instance="uitest-grade1"),
            event("graded", "ann", number=1, score=1, points=2, failed=["echo"], error="", seconds=3.0)]


def test_the_dashboard_follows_grade_events(client, tokens, served):
    for event in grade_events():
        served.take(event)
    board = client.get("/api/grade", params={"token": tokens.view}).json()
    assert board["active"] is True and board["lab"] == "uitest"
    assert board["rows"] == [
        {"student": "ann", "number": 1, "state": "graded", "score": 1.0, "points": 2.0, "failed": ["echo"],
         "error": "", "instance": None, "report": None},
        {"student": "<b>bo", "number": 2, "state": "queued", "score": None, "points": None, "failed": [],
         "error": "", "instance": None, "report": None}]
    refused = client.post("/api/grade/ann/regrade", params={"token": tokens.act}, json={})
    assert refused.status_code == 409 and "grade --ui" in refused.json()["error"]


def test_a_running_instance_is_shown_and_others_are_not(client, tokens, served):
    for event in grade_events()[:4]:
        served.take(event)
    lab = client.get("/api/lab", params={"token": tokens.view, "lab": "uitest-grade1"}).json()
    assert lab["name"] == "uitest-grade1"
    assert lab["networks"][0]["subnet"] == "10.84.0.0/24"   # moved as labctl grade moves slot 1
    for name in ("uitest-grade2", "other", "uitest-grade1/../x"):
        assert client.get("/api/lab", params={"token": tokens.view, "lab": name}).status_code == 404


def test_grade_ui_regrades_one_student_and_links_reports(write_lab, folder, engine, static, tokens, tmp_path):
    report = tmp_path / "report.html"
    report.write_text("<p>ann's report</p>")
    regraded: list[str] = []
    done = threading.Event()

    def again(student: str) -> None:
        regraded.append(student)
        done.set()
    path = write_lab(LAB)
    here = Served(read_lab(path), engine, lambda: read_lab(path), lambda each: engine,
                  Grading(again, lambda student: report if student == "ann" else None))
    for event in grade_events() + [Event("grade", "finished", "", "uitest", 2.0, {"graded": 1})]:
        here.take(event)
    with TestClient(build_app(here, tokens, static), base_url="http://127.0.0.1:8765") as client:
        board = client.get("/api/grade", params={"token": tokens.view}).json()
        assert board["active"] is False and board["rows"][0]["report"] == "grade/report/1"
        page = client.get("/grade/report/1", params={"token": tokens.view})
        assert page.text == "<p>ann's report</p>" and "default-src 'none'" in page.headers["content-security-policy"]
        assert client.get("/grade/report/2", params={"token": tokens.view}).status_code == 404
        assert client.post("/api/grade/nobody/regrade", params={"token": tokens.act}, json={}).status_code == 404
        answer = client.post("/api/grade/ann/regrade", params={"token": tokens.act}, json={})
        assert answer.status_code == 202 and answer.json() == {"regrading": "ann"}
        assert done.wait(10) and regraded == ["ann"]
    here.close()


# -- the command line ---------------------------------------------------------------------

@pytest.mark.parametrize("argv", [["ui"], ["grade", "class", "--ui"]])
def test_without_the_extra_the_verbs_say_which_in_one_line(monkeypatch, capsys, write_lab, argv):
    path = write_lab(LAB)
    monkeypatch.setitem(sys.modules, "starlette", None)
    assert main(["-f", str(path), *argv]) == USAGE
    said = capsys.readouterr().err
    assert said.count("\n") == 1 and "labctl-net[ui]" in said


def test_the_extra_is_declared():
    from importlib.metadata import requires
    declared = requires("labctl-net") or []
    extras = {line.split(">")[0].strip().lower(): line.split("extra ==")[1].strip(" \"'")
              for line in declared if "extra ==" in line}
    assert extras.get("starlette") == "ui" and extras.get("uvicorn") == "ui"
    core = {line.split(">")[0].strip().lower() for line in declared if "extra ==" not in line}
    assert "starlette" not in core and "uvicorn" not in core


def test_a_port_in_use_is_one_line():
    from labctl.ui.serve import base_url, listen
    first = listen("127.0.0.1", 0)
    try:
        assert base_url(first).startswith("http://127.0.0.1:")
        with pytest.raises(LabError) as refused:
            listen("127.0.0.1", first.getsockname()[1])
        assert "\n" not in str(refused.value) and "port" in str(refused.value)
    finally:
        first.close()
