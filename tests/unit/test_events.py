"""The event stream without an engine: publishing to nobody does nothing, a subscriber gets
what is published (in bursts too), a dead subscriber's socket goes, oversize details are
cut, a subscriber believes nothing it reads without checking it, a line escapes what it
shows; the engine's own events are translated from recorded ones, helpers never among
them; and `labctl events` prints both."""

from __future__ import annotations

import ast
import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace
from typing import Iterator

import pytest

from labctl.cli import verbs
from labctl.cli.main import main
from labctl.engines.base import EngineEvent
from labctl.engines.containers import HOST_EVENTS, EventTranslator, event_filters
from labctl.errors import LabError
from labctl.model.faults import HOST_ACTIONS
from labctl.names import HOST_LABEL, LAB_LABEL, ROLE_LABEL
from labctl.ops import events, lock
from labctl.ops.events import ACTIONS, EVENT_KINDS, MAX_DATAGRAM, MAX_TEXT, Event, publish, publish_all

from ..conftest import REPO

LAB = SimpleNamespace(name="evented")


class FakeEngine:
    """An engine that says who it is, and has the events it is given."""

    def __init__(self, happened: list[EngineEvent] | None = None):
        self.happened = happened or []
        self.closed = False

    def identity(self) -> str:
        return "unit-test-engine"

    def events(self, topology):
        engine = self

        class Stream:
            def __iter__(self):
                return iter(engine.happened)

            def close(self):
                engine.closed = True
        return Stream()


@pytest.fixture
def folder(monkeypatch) -> Iterator[Path]:
    """The lock folder, short enough that this test's own sockets fit an address."""
    top = Path(tempfile.mkdtemp(prefix="ev"))
    monkeypatch.setattr(lock, "FOLDER", top / "locks")
    monkeypatch.setattr(events, "_stalled", {})
    yield top / "locks"
    shutil.rmtree(top, ignore_errors=True)


def channel_of(engine) -> Path:
    return events.channel(LAB, engine)


# -- the transport --------------------------------------------------------------------------

def test_publishing_with_nobody_listening_makes_nothing(folder):
    engine = FakeEngine()
    publish(LAB, engine, "check", "passed", "tcp echo", reason="")
    publish_all(LAB, engine, (("check", "running", name, {}) for name in "ab"))
    assert not (folder / events.CHANNELS).exists()


def test_publishing_never_raises(folder, monkeypatch):
    class Broken:
        def identity(self) -> str:
            raise RuntimeError("the engine does not answer")
    publish(LAB, Broken(), "lab", "up", hosts=1)
    monkeypatch.setattr(lock, "lock_folder", lambda: (_ for _ in ()).throw(LabError("not private")))
    publish(LAB, FakeEngine(), "lab", "up", hosts=1)
    # A detail JSON cannot hold is published as its text; nothing reaches the caller.
    publish(LAB, FakeEngine(), "lab", "up", odd=object(), nan=float("nan"), huge=10 ** 40)


def test_a_subscriber_gets_what_is_published(folder):
    engine = FakeEngine()
    with events.subscribe(LAB, engine, engine_events=False) as subscription:
        assert stat.S_IMODE(os.lstat(channel_of(engine)).st_mode) == 0o700
        [listening] = os.listdir(channel_of(engine))
        assert stat.S_IMODE(os.lstat(channel_of(engine) / listening).st_mode) == 0o600
        publish(LAB, engine, "check", "failed", "tcp echo", source="alice", reason="refused", attempts=1)
        event = subscription.get(timeout=10)
        assert event is not None
        assert (event.kind, event.action, event.subject, event.lab) == ("check", "failed", "tcp echo", "evented")
        assert event.detail == {"source": "alice", "reason": "refused", "attempts": 1}
        assert subscription.get(timeout=0.01) is None
    # The last subscriber gone, the channel goes too.
    assert not channel_of(engine).exists()
    assert subscription.get() is None and list(subscription) == []


def test_a_burst_arrives_whole_and_in_order(folder):
    engine = FakeEngine()
    with events.subscribe(LAB, engine, engine_events=False) as subscription:
        publish_all(LAB, engine, (("check", "running", f"check {number}", {"reason": "x" * 500})
                                  for number in range(300)))
        for number in range(300):
            publish(LAB, engine, "check", "passed", f"one by one {number}")
        got = [subscription.get(timeout=10) for _ in range(600)]
    assert [event.subject for event in got if event] == ([f"check {n}" for n in range(300)]
                                                         + [f"one by one {n}" for n in range(300)])


def test_two_subscribers_each_get_every_event(folder):
    engine = FakeEngine()
    with events.subscribe(LAB, engine, engine_events=False) as first, \
            events.subscribe(LAB, engine, engine_events=False) as second:
        publish(LAB, engine, "fault", "partitioned", sides=[["alice"], ["bob"]])
        for subscription in (first, second):
            event = subscription.get(timeout=10)
            assert event is not None and event.detail == {"sides": [["alice"], ["bob"]]}


def test_a_dead_subscribers_socket_is_removed(folder):
    engine = FakeEngine()
    with events.subscribe(LAB, engine, engine_events=False) as subscription:
        # A subscriber killed outright leaves its socket, bound to nobody.
        dead = channel_of(engine) / "1-dead.sock"
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as leftover:
            leftover.bind(str(dead))
        publish(LAB, engine, "lab", "down", removed={"containers": 2})
        assert not dead.exists()
        assert subscription.get(timeout=10) is not None
    # Alone in the channel, the dead one takes the channel with it.
    _private(channel_of(engine))
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as leftover:
        leftover.bind(str(dead))
    publish(LAB, engine, "lab", "down")
    assert not channel_of(engine).exists()


def _private(channel: Path) -> None:
    """The channel's folders, as a subscriber makes them."""
    lock.lock_folder()
    for path in (channel.parent, channel):
        path.mkdir(mode=0o700, exist_ok=True)


def test_a_new_subscriber_sweeps_dead_ones(folder):
    engine = FakeEngine()
    _private(channel_of(engine))
    dead = channel_of(engine) / "1-dead.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as leftover:
        leftover.bind(str(dead))
    with events.subscribe(LAB, engine, engine_events=False):
        assert not dead.exists()


def test_a_subscriber_that_does_not_read_costs_a_publisher_one_wait(folder):
    engine = FakeEngine()
    _private(channel_of(engine))
    stuck = channel_of(engine) / "1-stuck.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as silent:   # bound, and never read
        silent.bind(str(stuck))
        for number in range(40):
            publish(LAB, engine, "check", "running", f"check {number}")
        assert stuck in events._stalled   # left alone from then on: its events dropped
        assert stuck.exists()             # alive, so kept


def test_a_channel_others_may_enter_is_refused(folder):
    engine = FakeEngine()
    channel = channel_of(engine)
    _private(channel)
    channel.chmod(0o777)
    with pytest.raises(LabError, match="only this user may enter"):
        events.subscribe(LAB, engine, engine_events=False)


def test_a_long_path_is_reached_through_its_folder(tmp_path, monkeypatch):
    place = tmp_path / ("deep" * 30)
    monkeypatch.setattr(lock, "FOLDER", place)
    engine = FakeEngine()
    assert len(str(channel_of(engine))) > 108
    with events.subscribe(LAB, engine, engine_events=False) as subscription:
        publish(LAB, engine, "lab", "up", hosts=3)
        event = subscription.get(timeout=10)
        assert event is not None and event.detail == {"hosts": 3}


def test_an_oversize_detail_is_cut(folder):
    engine = FakeEngine()
    with events.subscribe(LAB, engine, engine_events=False) as subscription:
        publish(LAB, engine, "check", "failed", "x" * 5000, reason="r" * 100_000)
        publish(LAB, engine, "grade", "graded", "ada", failed=[f"check {n} " + "y" * 900 for n in range(500)])
        publish(LAB, engine, "scenario", "step", "deep", detail={"a": {"b": {"c": {"d": 1}}}})
        long_one, many, deep = (subscription.get(timeout=10) for _ in range(3))
    assert long_one is not None and len(long_one.subject) == MAX_TEXT and long_one.subject.endswith("...")
    assert len(long_one.detail["reason"]) == MAX_TEXT
    assert many is not None and 0 < len(many.detail["failed"]) <= 100
    assert len(json.dumps(many.as_json()).encode()) <= MAX_DATAGRAM
    assert deep is not None and deep.detail == {"detail": {"a": {"b": None}}}


def test_every_datagram_fits(folder):
    made = [Event("grade", "graded", f"student {n}", "evented", 1.0, {"failed": ["z" * 999] * 100})
            for n in range(5)]
    grams = events.datagrams(made)
    assert all(len(gram) <= MAX_DATAGRAM for gram in grams)
    assert [event.subject for gram in grams for event in events.decode(gram, "evented")] == \
        [f"student {n}" for n in range(5)]


# -- what a subscriber believes ---------------------------------------------------------------

GOOD = {"kind": "host", "action": "exited", "subject": "alice", "lab": "evented", "time": 1.5,
        "detail": {"exit_code": 137}}


def test_a_well_formed_event_is_read():
    event = Event.from_json(GOOD)
    assert event == Event("host", "exited", "alice", "evented", 1.5, {"exit_code": 137})
    assert Event.from_json(event.as_json()) == event


@pytest.mark.parametrize("change", [
    {"kind": "mystery"}, {"action": "exploded"}, {"kind": "check", "action": "exited"},
    {"subject": 7}, {"subject": "s" * (MAX_TEXT + 1)}, {"lab": None}, {"time": "now"}, {"time": True},
    {"time": float("inf")}, {"detail": ["not", "a", "mapping"]}, {"kind": None}, {"action": "x" * 10_000},
    {"time": 10 ** 400}, {"time": -(10 ** 400)},
])
def test_a_malformed_event_is_refused(change):
    with pytest.raises(ValueError):
        Event.from_json({**GOOD, **change})


@pytest.mark.parametrize("data", [None, [], "host", 3])
def test_what_is_not_an_object_is_refused(data):
    with pytest.raises(ValueError):
        Event.from_json(data)


def test_a_datagram_is_read_only_when_whole_and_of_this_lab():
    good = json.dumps([GOOD]).encode()
    assert [event.subject for event in events.decode(good, "evented")] == ["alice"]
    assert events.decode(good, "another-lab") == []
    assert events.decode(b"not json", "evented") == []
    assert events.decode(b"\xff\xfe", "evented") == []
    assert events.decode(b"[" * 10_000 + b"]" * 10_000, "evented") == []
    assert events.decode(json.dumps([GOOD, {"kind": "nope"}, 5, GOOD]).encode(), "evented") == \
        [Event.from_json(GOOD)] * 2
    assert events.decode(json.dumps({"a": GOOD}).encode(), "evented") == []
    huge = json.dumps([{**GOOD, "detail": {"pad": "p" * MAX_DATAGRAM}}]).encode()
    assert events.decode(huge, "evented") == []
    # A time no float holds (JSON has such integers) drops that event, not the reader.
    assert events.decode(json.dumps([{**GOOD, "time": 10 ** 400}, GOOD]).encode(), "evented") == [Event.from_json(GOOD)]


def test_a_line_escapes_what_it_shows():
    event = Event("check", "failed", "echo\x1b[2J\nrm", "lab\u202e", 0.0,
                  {"reason": "got 'HELLO\x07'", "nested": {"k": "\x1b]0;title\x07"}})
    line = event.line()
    assert "\n" not in line and "\x1b" not in line and "\x07" not in line and "\u202e" not in line
    assert "\\x1b[2J\\nrm" in line and "\\u202e" in line
    assert "reason=" in line and "check failed" in line


def test_json_lines_are_ascii():
    from labctl.cli import views
    text = views.event_json(Event("grade", "graded", "\udcff\u202ezoe", "evented", 1.0, {"score": 2.5}))
    text.encode("ascii")
    assert json.loads(text)["detail"] == {"score": 2.5}


def _texts(node: ast.expr) -> list[str]:
    """The texts an argument may be: a literal, or either side of `a if c else b`."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.IfExp):
        return _texts(node.body) + _texts(node.orelse)
    return []


def test_every_action_labctl_publishes_is_one_a_subscriber_takes():
    """Each publish(...), tell(...) and (kind, action, subject, detail) in labctl.ops names a
    kind and an action of ACTIONS: an event a subscriber would refuse is never written."""
    said = []
    for path in (REPO / "labctl" / "ops").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "publish":
                said += [(path.name, kind, action) for kind in _texts(node.args[2])
                         for action in (_texts(node.args[3]) or ["(any)"])]
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "tell":
                said += [(path.name, "grade", action) for action in _texts(node.args[0])]
            elif isinstance(node, ast.Tuple) and len(node.elts) == 4 and set(_texts(node.elts[0])) & set(EVENT_KINDS):
                said += [(path.name, kind, action) for kind in _texts(node.elts[0]) for action in _texts(node.elts[1])]
    assert len(said) > 25
    assert [item for item in said if item[1] not in ACTIONS
            or (item[2] not in ACTIONS[item[1]] and item[2] != "(any)")] == []
    assert {kind for _, kind, _ in said} == set(EVENT_KINDS) - {"network"}   # the engine's alone
    assert set(HOST_ACTIONS) <= set(ACTIONS["fault"])   # host_action publishes its action


# -- the engine's own events ------------------------------------------------------------------

TOPOLOGY = SimpleNamespace(name="evented", project="lab-evented", networks={"lan": None, "dmz": None})


def container_event(action: str, host: str = "alice", role: str = "host", lab: str = "evented",
                    **attributes: str) -> dict:
    """An event as Docker 20.10 decodes it: a container's carry its labels."""
    return {"status": action, "id": f"id-{host}", "from": "labctl-base:host", "Type": "container",
            "Action": action, "Actor": {"ID": f"id-{host}", "Attributes": {
                LAB_LABEL: lab, ROLE_LABEL: role, HOST_LABEL: host, "image": "labctl-base:host",
                "name": f"lab-{lab}-{host}-1", **attributes}},
            "scope": "local", "time": 1700000000, "timeNano": 1700000000123456789}


def network_event(action: str, network: str = "lab-evented_lan", container: str | None = None) -> dict:
    """A network's events carry no labels: its name, and the container (dis)connected."""
    attributes = {"name": network, "type": "bridge", **({"container": container} if container else {})}
    return {"Type": "network", "Action": action, "Actor": {"ID": "net-id", "Attributes": attributes},
            "scope": "local", "time": 1700000001, "timeNano": 1700000001000000000}


def translator(known: dict[str, dict[str, str]] | None = None) -> EventTranslator:
    def inspect(container: str) -> dict[str, str]:
        if container not in (known or {}):
            raise LookupError("no such container")
        return (known or {})[container]
    return EventTranslator(TOPOLOGY, inspect)   # type: ignore[arg-type]


@pytest.mark.parametrize("docker_action, action", sorted(HOST_EVENTS.items()))
def test_a_hosts_container_events_are_host_events(docker_action, action):
    event = translator()(container_event(docker_action))
    assert event == EngineEvent("host", action, "alice", 1700000000.1234567, {})
    assert action in ACTIONS["host"]


def test_an_exit_says_its_code():
    event = translator()(container_event("die", exitCode="137"))
    assert event is not None and (event.action, event.detail) == ("exited", {"exit_code": 137})
    assert translator()(container_event("die", exitCode="garbage")) == \
        EngineEvent("host", "exited", "alice", 1700000000.1234567, {})


@pytest.mark.parametrize("raw", [
    container_event("exec_start: python3 /opt/labctl/services/probe.pyc"),
    container_event("exec_die"), container_event("health_status: healthy"), container_event("kill", signal="15"),
    container_event("attach"), container_event("resize"),
    container_event("start", role="helper"),       # a check's probe, a capture's helper
    container_event("start", role="net"),          # a network sidecar
    container_event("start", lab="another"),       # another lab's host
    {"Type": "container", "Action": "start"},      # no actor at all
    {"Type": "image", "Action": "pull", "Actor": {"Attributes": {"name": "x"}}},
    network_event("create", network="lab-evented_lan2"),   # a prefix of another lab's network
    network_event("create", network="other_lan"),
    network_event("prune"),
    "not a mapping", None, [],
])
def test_what_is_not_about_the_labs_hosts_or_networks_says_nothing(raw):
    assert translator()(raw) is None


def test_network_events_name_the_network_and_the_host():
    translate = translator({"id-bob": {LAB_LABEL: "evented", ROLE_LABEL: "host", HOST_LABEL: "bob"},
                            "probe": {LAB_LABEL: "evented", ROLE_LABEL: "helper"}})
    assert translate(network_event("create")) == EngineEvent("network", "created", "lan", 1700000001.0, {})
    assert translate(network_event("destroy", "lab-evented_dmz")) == \
        EngineEvent("network", "removed", "dmz", 1700000001.0, {})
    # A host seen in its own events, then one looked up.
    translate(container_event("create", host="alice"))
    assert translate(network_event("connect", container="id-alice")) == \
        EngineEvent("network", "connected", "lan", 1700000001.0, {"host": "alice"})
    assert translate(network_event("disconnect", container="id-bob")) == \
        EngineEvent("network", "disconnected", "lan", 1700000001.0, {"host": "bob"})
    # A helper joining, or a container gone before it could be looked up: nothing.
    assert translate(network_event("connect", container="probe")) is None
    assert translate(network_event("connect", container="gone")) is None


def test_the_engine_is_asked_for_the_labs_hosts_and_networks_only():
    containers, networks = event_filters(TOPOLOGY)   # type: ignore[arg-type]
    assert containers == {"type": ["container"], "label": [f"{LAB_LABEL}=evented", f"{ROLE_LABEL}=host"]}
    assert networks == {"type": ["network"], "network": ["lab-evented_dmz", "lab-evented_lan"]}


def test_a_subscription_merges_the_engines_events(folder):
    engine = FakeEngine([EngineEvent("host", "started", "alice", 5.0),
                         EngineEvent("host", "nonsense", "alice", 6.0),       # refused, not passed on
                         EngineEvent("network", "connected", "lan", 7.0, {"host": "alice"})])
    with events.subscribe(LAB, engine) as subscription:
        first, second = subscription.get(timeout=10), subscription.get(timeout=10)
    assert first == Event("host", "started", "alice", "evented", 5.0, {})
    assert second == Event("network", "connected", "lan", "evented", 7.0, {"host": "alice"})
    assert engine.closed


# -- labctl events ------------------------------------------------------------------------------

def test_labctl_events_prints_one_line_per_event(folder, tmp_path, monkeypatch, capsys):
    (tmp_path / "lab.yaml").write_text((REPO / "lab.yaml").read_text())
    monkeypatch.chdir(tmp_path)
    engine = FakeEngine([EngineEvent("host", "exited", "alice", 5.0, {"exit_code": 1}),
                         EngineEvent("host", "started", "bob", 6.0)])
    monkeypatch.setattr(verbs, "open_lab", lambda args: (verbs.load(args), engine))
    assert main(["events", "--json", "--count", "2"]) == 0
    out, err = capsys.readouterr()
    assert [json.loads(line) for line in out.splitlines()] == [
        {"kind": "host", "action": "exited", "subject": "alice", "lab": "campus", "time": 5.0,
         "detail": {"exit_code": 1}},
        {"kind": "host", "action": "started", "subject": "bob", "lab": "campus", "time": 6.0, "detail": {}}]
    assert "listening for events of lab 'campus'; Ctrl-C stops" in err
    assert main(["events", "--count", "1"]) == 0
    assert "campus host exited 'alice' exit_code=1" in capsys.readouterr().out


def test_labctl_events_takes_a_count_of_one_or_more(capsys):
    assert main(["events", "--count", "0"]) == 2
    assert "--count 0" in capsys.readouterr().err


CTRL_C = """
import faulthandler, signal, sys, threading
faulthandler.register(signal.SIGUSR1, all_threads=True)   # where it stands, should it hang
from pathlib import Path
from labctl.cli import verbs
from labctl.cli.main import main
from labctl.ops import lock

lock.FOLDER = Path(sys.argv[1])
closed = threading.Event()


class Engine:
    def identity(self):
        return "unit-test-engine"

    def events(self, topology):
        class Stream:   # says nothing until closed, as an engine with nothing to say
            def __iter__(self):
                closed.wait()
                return iter(())

            def close(self):
                closed.set()
        return Stream()


verbs.open_lab = lambda args: (verbs.load(args), Engine())
code = main(["events"])
print("engine stream closed" if closed.is_set() else "engine stream left open", flush=True)
sys.exit(code)
"""


def test_labctl_events_stops_at_ctrl_c(folder, tmp_path):
    (tmp_path / "lab.yaml").write_text((REPO / "lab.yaml").read_text())
    process = subprocess.Popen([sys.executable, "-c", CTRL_C, str(folder)], cwd=tmp_path, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert "listening for events of lab 'campus'" in process.stderr.readline()
        process.send_signal(signal.SIGINT)   # Ctrl-C, while it waits for its next event
        try:
            out, err = process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGUSR1)
            try:
                process.communicate(timeout=3)
            except subprocess.TimeoutExpired:
                pass
            process.kill()
            pytest.fail("labctl events hung after Ctrl-C; its threads:\n" + process.communicate()[1])
    finally:
        process.kill()
    assert process.returncode == 130 and err == "labctl: interrupted\n"
    assert out == "engine stream closed\n"
    assert os.listdir(folder / events.CHANNELS) == []   # its socket and its channel went with it
