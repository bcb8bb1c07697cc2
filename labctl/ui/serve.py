"""Serve the app with uvicorn: on a socket bound before anything is printed (so port 0 says
which port it got, and a port in use is one line), until Ctrl-C, SIGTERM or `stop`.

Idle, it does nothing: uvicorn's own loop wakes ten times a second to refresh its Date
header and look for a reason to stop, so here it sends no Date header and waits for that
reason instead; WebSocket pings are off (terminals are on this machine, or say when they
close). Only a request wakes it."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import threading
from typing import Any, Callable, Iterator

import uvicorn

from ..errors import LabError

GRACE = 2            # seconds open pages get to finish when the server stops
LARGEST_MESSAGE = 1 << 20
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def listen(address: str, port: int) -> socket.socket:
    """A listening socket on `address`:`port` (0: any free port), or one line saying why not."""
    try:
        found = socket.getaddrinfo(address, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError) as exc:
        raise LabError(f"--bind {address}: not an address of this machine ({exc})") from None
    family, kind, protocol, _, where = found[0]
    listener = socket.socket(family, kind, protocol)
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(where)
        listener.listen(128)
    except OSError as exc:
        listener.close()
        raise LabError(f"cannot listen on {address} port {port}: {exc.strerror}") from None
    listener.setblocking(False)
    return listener


def base_url(listener: socket.socket) -> str:
    """http://ADDRESS:PORT/ of a listening socket (IPv6 addresses in brackets)."""
    address, port = listener.getsockname()[:2]
    return f"http://[{address}]:{port}/" if ":" in address else f"http://{address}:{port}/"


class Quiet(uvicorn.Server):
    """uvicorn's server, asleep while nothing happens (see the module's text)."""

    def __init__(self, config: uvicorn.Config, stopping: Callable[[], None] = lambda: None):
        super().__init__(config)
        self.stopping = stopping
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None

    async def main_loop(self) -> None:
        self._loop, self._wake = asyncio.get_running_loop(), asyncio.Event()
        await self.on_tick(0)
        while not self.should_exit:
            await self._wake.wait()
            self._wake.clear()

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        """What keeps a connection open for good (a page's event stream) ends first."""
        self.stopping()
        await super().shutdown(sockets)

    def stop(self) -> None:
        """Stop serving (from any thread, or a signal handler)."""
        self.should_exit = True
        if self._loop is not None and self._wake is not None:
            with contextlib.suppress(RuntimeError):   # its loop has ended already
                self._loop.call_soon_threadsafe(self._wake.set)

    def handle_exit(self, sig: int, frame: Any) -> None:
        if self.should_exit and sig == signal.SIGINT:
            self.force_exit = True   # a second Ctrl-C: open pages are not waited for
        self.stop()

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """Ctrl-C, SIGTERM and SIGHUP stop the server, which then returns as any other end:
        stopping is how a server is done with."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {number: signal.signal(number, self.handle_exit) for number in STOP_SIGNALS}
        try:
            yield
        finally:
            for number, handler in previous.items():
                signal.signal(number, handler)


def _ending(app: Any) -> Callable[[], None]:
    from .stream import end_all
    return lambda: end_all(app.state.streams)


def server(app: Any) -> Quiet:
    config = uvicorn.Config(app, lifespan="off", access_log=False, log_level="warning", date_header=False,
                            server_header=False, ws_ping_interval=None, ws_ping_timeout=None,
                            ws_max_size=LARGEST_MESSAGE, timeout_graceful_shutdown=GRACE, proxy_headers=False)
    return Quiet(config, _ending(app))


def run(app: Any, listener: socket.socket) -> None:
    """Serve `app` on `listener` in this thread until stopped."""
    asyncio.run(server(app).serve(sockets=[listener]))


def start(app: Any, listener: socket.socket) -> tuple[Quiet, threading.Thread]:
    """Serve `app` on `listener` from a thread of its own; `stop()` the server, then join it."""
    running = server(app)
    thread = threading.Thread(target=asyncio.run, args=(running.serve(sockets=[listener]),), name="labctl-ui",
                              daemon=True)
    thread.start()
    return running, thread
