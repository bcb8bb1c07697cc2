"""What happens to a lab, as it happens: `labctl events`, and the page `labctl ui` serves.

Two sources feed one stream, and neither polls. labctl's operations say what they do (a
lab up, a check judged, an impairment applied, a class's grading) with `publish`; the
engine's own event stream says what happens to the lab's hosts and networks (a host
exiting, a network connected), read through `Engine.events` while someone listens.

The transport is the kernel's. A subscriber binds an AF_UNIX datagram socket in the lab's
channel: a folder named as the lab's lock is (labctl.ops.lock.lab_key), under the same
private folder. `publish` sends each socket there one datagram without blocking: a refused
socket (its subscriber died) is removed; a full one (the kernel queues a few datagrams per
socket) gets WAIT at most to make room, and one that does not is left alone for STALLED
seconds, its events dropped. With nobody listening there is no channel, and publishing
costs one failed lookup of it.

A datagram is a JSON list of events, at most MAX_DATAGRAM bytes. The folder is private to
its user, yet a subscriber still believes nothing it reads: each event is checked
(Event.from_json), every size is bounded, and every text in it is a lab's or a student's,
escaped wherever it is shown.
"""

from __future__ import annotations

import json
import math
import os
import queue
import secrets
import select
import socket
import stat
import threading
import time
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

from ..engines.base import Engine, EngineEvents, put_last
from ..errors import LabError
from ..model.faults import HOST_ACTIONS
from ..model.topology import Topology
from ..text import cut, one_line, unicode_safe
from . import lock

EVENT_KINDS = ("lab", "host", "network", "impairment", "fault", "capture", "check", "scenario", "grade")
# What each kind of event may say happened; an event saying anything else is refused.
ACTIONS: dict[str, tuple[str, ...]] = {
    "lab": ("up", "down"),
    "host": ("created", "started", "exited", "restarting", "stopped", "paused", "unpaused", "removed", "oom",
             "ready"),
    "network": ("created", "removed", "connected", "disconnected"),
    "impairment": ("applied", "cleared"),
    "fault": ("partitioned", "healed", "disconnected", "reconnected", *HOST_ACTIONS),
    "capture": ("started", "stopped"),
    "check": ("running", "passed", "failed"),
    "scenario": ("started", "step", "ended"),
    "grade": ("started", "queued", "coming up", "checking", "graded", "finished"),
}

MAX_DATAGRAM = 16 * 1024   # bytes of one datagram; a longer one is not read
MAX_TEXT = 1000            # characters of the subject, the lab's name, or any text in a detail
MAX_KEY = 100              # characters of a detail's key
MAX_ITEMS = 100            # entries of a list or a mapping in a detail
MAX_DEPTH = 3              # mappings and lists in a detail, one inside another
MAX_INTEGER = 1 << 63
MAX_QUEUED = 10_000        # events a subscriber holds unread; past that, new ones are dropped
CHANNELS = "events"        # the channels' folder, in the lock folder
SUFFIX = ".sock"
SOCKET_PATH = 100          # bytes of a socket's path that surely fit its address (108 on Linux)
WAIT = 0.05                # seconds a publisher waits, at most, for subscribers whose queue is full
STALLED = 10.0             # seconds it then leaves one that did not catch up, dropping its events
FOLDER_MODE = 0o700
SOCKET_MODE = 0o600


def _bounded(value: Any, depth: int = 0, text: int = MAX_TEXT, items: int = MAX_ITEMS) -> Any:
    """`value` as JSON can carry it, every size bounded: texts cut at `text` characters (and
    encodable as UTF-8), lists and mappings at `items` entries and MAX_DEPTH levels, numbers
    finite and of a size JSON readers agree on; anything else as its text."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value if -MAX_INTEGER <= value < MAX_INTEGER else None
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, str):
        return cut(unicode_safe(value[:text + 1]), text)
    if isinstance(value, (list, tuple)):
        return [_bounded(item, depth + 1, text, items) for item in value[:items]] if depth < MAX_DEPTH else None
    if isinstance(value, dict):
        if depth >= MAX_DEPTH:
            return None
        return {cut(unicode_safe(str(key)[:MAX_KEY + 1]), MAX_KEY): _bounded(item, depth + 1, text, items)
                for key, item in list(value.items())[:items]}
    return cut(unicode_safe(str(value)[:text + 1]), text)


def _text(data: dict[str, Any], key: str, limit: int = MAX_TEXT) -> str:
    value = data.get(key)
    if not isinstance(value, str):
        raise ValueError(f"an event's {key} must be a text")
    if len(value) > limit:
        raise ValueError(f"an event's {key} is longer than {limit} characters")
    return unicode_safe(value)


@dataclass(frozen=True)
class Event:
    kind: str                  # one of EVENT_KINDS
    action: str                # one of ACTIONS[kind]
    subject: str               # the host, network, check, scenario, capture target or student ("" for the lab)
    lab: str                   # the lab's name on the engine
    time: float                # seconds since the epoch
    detail: dict[str, Any] = field(default_factory=dict)   # JSON-safe and small

    def as_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "action": self.action, "subject": self.subject, "lab": self.lab,
                "time": self.time, "detail": self.detail}

    @classmethod
    def from_json(cls, data: Any) -> "Event":
        """The event `data` (a decoded JSON object) describes, once its every part is what an
        event holds; else ValueError. Its detail is bounded, not refused."""
        if not isinstance(data, dict):
            raise ValueError("an event must be a JSON object")
        kind, action = _text(data, "kind", 20), _text(data, "action", 20)
        if kind not in ACTIONS:
            raise ValueError(f"no kind of event is called {kind!r}")
        if action not in ACTIONS[kind]:
            raise ValueError(f"a {kind} event cannot say {action!r}")
        when, detail = data.get("time"), data.get("detail", {})
        # An integer past a float's range (JSON has them) is refused too: math.isfinite
        # would raise OverflowError on it, and end the reader that met it.
        if isinstance(when, bool) or not isinstance(when, (int, float)) or \
                (isinstance(when, int) and not -MAX_INTEGER <= when < MAX_INTEGER) or not math.isfinite(when):
            raise ValueError("an event's time must be a number")
        if not isinstance(detail, dict):
            raise ValueError("an event's detail must be a JSON object")
        return cls(kind, action, _text(data, "subject"), _text(data, "lab"), float(when), _bounded(detail))

    def line(self) -> str:
        """One line for a terminal: when, the lab, what, about whom, and the detail, every
        text escaped."""
        try:
            stamp = time.strftime("%H:%M:%S", time.localtime(self.time)) + f".{int(self.time * 1000) % 1000:03d}"
        except (OverflowError, OSError, ValueError):
            stamp = "--:--:--.---"
        said = " ".join(f"{key}={_shown(value)}" for key, value in self.detail.items())
        return one_line(" ".join(part for part in (stamp, self.lab, self.kind, self.action,
                                                   repr(self.subject) if self.subject else "", said) if part))


def _shown(value: Any) -> str:
    return value if isinstance(value, str) and value and " " not in value else \
        json.dumps(value, ensure_ascii=False, separators=(",", ":"))


# -- publishing ---------------------------------------------------------------------------

# Each engine's channel per lab, found once: an engine's identity may cost a request.
_channels: weakref.WeakKeyDictionary[Any, dict[tuple[str, str], Path]] = weakref.WeakKeyDictionary()


def channel(topology: Topology, engine: Engine) -> Path:
    """The lab's channel folder (it exists only while someone listens, or until a publisher
    finds that nobody does any more)."""
    return lock.lock_folder() / CHANNELS / lock.lab_key(topology, engine)


def _known_channel(topology: Topology, engine: Engine) -> Path | None:
    key = (topology.name, str(lock.FOLDER))
    try:
        known = _channels.setdefault(engine, {})
    except TypeError:   # an engine that cannot be referred to weakly is asked every time
        known = {}
    found = known.get(key)
    if found is None:
        try:
            found = known[key] = channel(topology, engine)
        except Exception:   # no private folder, or the engine does not answer: nobody can listen
            return None
    return found


def publish(topology: Topology, engine: Engine, kind: str, action: str, subject: str = "", **detail: Any) -> None:
    """Tell whoever listens to the lab that `kind` `action` happened to `subject`. Never
    raises, nor blocks (a subscriber that is behind gets WAIT at most); with nobody
    listening it costs one failed lookup."""
    publish_all(topology, engine, ((kind, action, subject, detail),))


def publish_all(topology: Topology, engine: Engine, events: Iterable[tuple[str, str, str, dict[str, Any]]]) -> None:
    """`publish` for several events at once (kind, action, subject, detail), as few datagrams:
    a burst (every check of a run) fits a subscriber's queue. `events` is read only when
    someone listens."""
    try:
        folder = _known_channel(topology, engine)
        if folder is None:
            return
        try:
            descriptor = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError:
            return   # nobody listens
        try:
            _send(descriptor, folder, [Event(kind, action, cut(unicode_safe(subject), MAX_TEXT), topology.name,
                                             time.time(), _bounded(detail)) for kind, action, subject, detail in events])
        finally:
            os.close(descriptor)
    except Exception:
        pass   # an event never changes what an operation does, nor how it fails


def _encoded(event: Event) -> bytes:
    """The event as JSON, its detail cut further where the whole would not fit a datagram."""
    for text, items in ((MAX_TEXT, MAX_ITEMS), (100, 10)):
        data = json.dumps({**event.as_json(), "detail": _bounded(event.detail, text=text, items=items)},
                          ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()
        if len(data) <= MAX_DATAGRAM - 2:
            return data
    return json.dumps({**event.as_json(), "detail": {}}, ensure_ascii=False, separators=(",", ":")).encode()


def datagrams(events: list[Event]) -> list[bytes]:
    """The events as JSON lists of at most MAX_DATAGRAM bytes each, in order."""
    grams: list[bytes] = []
    pending: list[bytes] = []
    size = 2
    for data in map(_encoded, events):
        if pending and size + 1 + len(data) > MAX_DATAGRAM:
            grams.append(b"[" + b",".join(pending) + b"]")
            pending, size = [], 2
        pending.append(data)
        size += len(data) + (1 if len(pending) > 1 else 0)
    if pending:
        grams.append(b"[" + b",".join(pending) + b"]")
    return grams


def _base(folder: Path, descriptor: int) -> str:
    """How a socket in `folder` is named in its address: by its path, or, where that would
    not fit an address, through the folder's open descriptor."""
    path = str(folder)
    return path if len(os.fsencode(path)) + 30 < SOCKET_PATH else f"/proc/self/fd/{descriptor}"


def _send(descriptor: int, folder: Path, events: list[Event]) -> None:
    names = [name for name in os.listdir(descriptor) if name.endswith(SUFFIX)]
    gone = 0
    if names and events:
        grams = datagrams(events)
        base = _base(folder, descriptor)
        deadline = time.monotonic() + WAIT
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sender:
            for name in names:
                address = f"{base}/{name}"
                for gram in grams:
                    try:
                        try:
                            sender.sendto(gram, socket.MSG_DONTWAIT, address)
                        except BlockingIOError:   # its queue is full: a moment for it to read
                            if not _room(address, folder / name, deadline):
                                break             # it is not reading: dropped
                            sender.sendto(gram, socket.MSG_DONTWAIT, address)
                    except ConnectionRefusedError:   # its subscriber died without removing it
                        _remove(name, descriptor)
                        gone += 1
                        break
                    except OSError:   # it closed meanwhile, or is full still: dropped
                        break
    if gone == len(names):
        try:
            os.rmdir(folder)   # nobody listens any more; a subscriber arriving meanwhile tries again
        except OSError:
            pass


# Subscribers whose queue stayed full for WAIT, by path: publishers drop their events at
# once until the time given (a stopped `labctl events` costs an operation WAIT, once).
_stalled: dict[Path, float] = {}


def _room(address: str, path: Path, deadline: float) -> bool:
    """Whether the subscriber at `address` made room in its queue before `deadline` (or
    WAIT at most). A kernel holds only a few datagrams per socket (net.unix.max_dgram_qlen),
    so a burst may find a subscriber that is reading, only a little behind."""
    now = time.monotonic()
    if _stalled.get(path, 0.0) > now or now >= deadline:
        return False
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as waiter:
        waiter.connect(address)   # a connected datagram socket is writable once its peer has room
        poller = select.poll()
        poller.register(waiter, select.POLLOUT)
        if poller.poll(max(1, int((deadline - now) * 1000))):
            return True
    if len(_stalled) > 1000:
        _stalled.clear()
    _stalled[path] = time.monotonic() + STALLED
    return False


def _remove(name: str, descriptor: int) -> None:
    try:
        os.unlink(name, dir_fd=descriptor)
    except OSError:
        pass


# -- subscribing --------------------------------------------------------------------------

def _private_folder(path: Path) -> None:
    """`path`, made if missing, once it is a folder of ours that nobody else may enter."""
    try:
        os.mkdir(path, FOLDER_MODE)
    except FileExistsError:
        pass
    except OSError as exc:
        raise LabError(f"event channel {one_line(path, 200)}: cannot make it: {exc.strerror}") from None
    try:
        info = os.lstat(path)
    except OSError as exc:
        raise LabError(f"event channel {one_line(path, 200)}: cannot read it: {exc.strerror}") from None
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid() or info.st_mode & 0o077:
        raise LabError(f"event channel {one_line(path, 200)}: it is not a folder of this user's that "
                       "only this user may enter; remove it")


def _bind(folder: Path) -> tuple[socket.socket, str]:
    """A socket bound in `folder` under a name of its own, and that name. A publisher that
    finds nobody listening removes the folder; then it is made again."""
    for _attempt in range(5):
        _private_folder(folder.parent)
        _private_folder(folder)
        try:
            descriptor = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except FileNotFoundError:
            continue
        try:
            _sweep(descriptor, folder)
            name = f"{os.getpid()}-{secrets.token_hex(4)}{SUFFIX}"
            listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            try:
                listener.bind(f"{_base(folder, descriptor)}/{name}")
                os.chmod(name, SOCKET_MODE, dir_fd=descriptor)
            except FileNotFoundError:
                listener.close()
                continue
            except BaseException:
                listener.close()
                raise
            return listener, name
        finally:
            os.close(descriptor)
    raise LabError(f"event channel {one_line(folder, 200)}: it keeps going away; try again")


def _sweep(descriptor: int, folder: Path) -> None:
    """Remove the sockets of subscribers that died without removing them."""
    base = _base(folder, descriptor)
    for name in os.listdir(descriptor):
        if not name.endswith(SUFFIX):
            continue
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as probe:
            try:
                probe.connect(f"{base}/{name}")
            except ConnectionRefusedError:
                _remove(name, descriptor)
            except OSError:
                pass


def decode(data: bytes, lab: str) -> list[Event]:
    """The events of one datagram that are well formed and of `lab`; the rest is dropped."""
    if len(data) > MAX_DATAGRAM:
        return []
    try:
        items = json.loads(data.decode("utf-8"))
    except (ValueError, RecursionError):
        return []
    events = []
    for item in items if isinstance(items, list) else []:
        try:
            event = Event.from_json(item)
        except ValueError:
            continue
        if event.lab == lab:
            events.append(event)
    return events


_CLOSED = object()


class Subscription:
    """The lab's events as they happen, from labctl's operations and (with `engine_events`)
    the engine's own stream: iterate it, or `get` one at a time. A context manager; `close`
    ends it. Idle, it costs nothing: its threads wait on a socket and on the engine."""

    def __init__(self, topology: Topology, engine: Engine, engine_events: bool = True):
        self.lab = topology.name
        self._queue: queue.Queue[Any] = queue.Queue(MAX_QUEUED)
        self._closed = threading.Event()
        self._folder = channel(topology, engine)
        self._socket, self._name = _bind(self._folder)
        self._engine: EngineEvents | None = None
        self._threads = [threading.Thread(target=self._read, name="labctl-events", daemon=True)]
        try:
            if engine_events:
                self._engine = engine.events(topology)
                self._threads.append(threading.Thread(target=self._follow, args=(self._engine,),
                                                      name="labctl-engine-events", daemon=True))
        except BaseException:
            self.close()
            raise
        for thread in self._threads:
            thread.start()

    def _put(self, event: Event) -> None:
        if not self._closed.is_set():
            try:
                self._queue.put_nowait(event)
            except queue.Full:
                pass   # nobody reads: the newest are dropped, the memory stays bounded

    def _read(self) -> None:
        while True:
            try:
                data = self._socket.recv(MAX_DATAGRAM + 1)
            except OSError:
                return
            if self._closed.is_set():
                return
            for event in decode(data, self.lab):
                self._put(event)

    def _follow(self, stream: EngineEvents) -> None:
        try:
            for item in stream:
                try:
                    self._put(Event.from_json({"kind": item.kind, "action": item.action,
                                               "subject": cut(item.subject, MAX_TEXT), "lab": self.lab,
                                               "time": item.time, "detail": item.detail}))
                except ValueError:
                    continue
        except Exception:
            pass   # the engine went away: labctl's own events still come

    def get(self, timeout: float | None = None) -> Event | None:
        """The next event; None once `timeout` seconds passed without one, or once closed."""
        if self._closed.is_set() and self._queue.empty():
            return None
        try:
            item = self._queue.get(timeout=timeout)
        except queue.Empty:
            return None
        if item is _CLOSED:
            self._say_closed()   # for whoever else waits
            return None
        return item

    def __iter__(self) -> Iterator[Event]:
        while True:
            event = self.get()
            if event is None:
                return
            yield event

    def _say_closed(self) -> None:
        put_last(self._queue, _CLOSED)

    def close(self) -> None:
        if self._closed.is_set():
            return
        self._closed.set()
        try:
            self._socket.shutdown(socket.SHUT_RDWR)   # wakes the reader
        except OSError:
            pass
        if self._threads[0].is_alive():
            self._threads[0].join(timeout=2)
        self._socket.close()
        try:
            os.unlink(self._folder / self._name)
            os.rmdir(self._folder)   # where it was the last
        except OSError:
            pass
        if self._engine is not None:
            try:
                self._engine.close()
            except Exception:
                pass
        self._say_closed()

    def __enter__(self) -> "Subscription":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()


def subscribe(topology: Topology, engine: Engine, engine_events: bool = True) -> Subscription:
    """Listen to the lab from now on (see Subscription). Raises LabError where labctl has no
    private folder for it, or the engine's stream cannot be opened."""
    return Subscription(topology, engine, engine_events)
