"""What the CLI calls: a server for one lab, its tokens made, its socket bound and its
watching subscription open, ready to print its addresses and serve (in this thread until
Ctrl-C for `labctl ui`, or beside the grading for `labctl grade --ui`)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Callable

from ..engines.base import Engine
from ..labfile.load import Lab
from .app import build_app
from .auth import Tokens
from .grade import Grading
from .serve import Quiet, base_url, listen, run, start
from .served import Served


@dataclass
class Launched:
    served: Served
    tokens: Tokens
    app: Any
    base: str                          # http://ADDRESS:PORT/
    _listener: Any = None
    _running: tuple[Quiet, threading.Thread] | None = field(default=None, repr=False)

    def url(self, path: str = "", act: bool = True) -> str:
        """The address of `path` (a page: "", "grade", "host/NAME"), with the act or view token."""
        return f"{self.base}{path}?token={self.tokens.act if act else self.tokens.view}"

    def serve(self) -> None:
        """Serve in this thread until Ctrl-C, SIGTERM or SIGHUP; then end cleanly."""
        try:
            run(self.app, self._listener)
        finally:
            self.close()

    def start(self) -> None:
        """Serve from a thread of its own, until `stop`."""
        self._running = start(self.app, self._listener)

    def stop(self) -> None:
        if self._running is not None:
            server, thread = self._running
            server.stop()
            thread.join(timeout=10)
        self.close()

    def close(self) -> None:
        self.app.state.captures.stop_all()
        self.served.close()
        if self._listener is not None:
            self._listener.close()


def launch(lab: Lab, engine: Engine, read: Callable[[], Lab], open_engine: Callable[[Lab], Engine],
           bind: str, port: int, say: Callable[[str], None], grading: Grading | None = None) -> Launched:
    listener = listen(bind, port)
    try:
        served = Served(lab, engine, read, open_engine, grading, say)
        served.watch()
        tokens = Tokens()
        app = build_app(served, tokens, loopback=not exposed(listener.getsockname()[0]))
        return Launched(served, tokens, app, base_url(listener), listener)
    except BaseException:
        listener.close()
        raise


def exposed(bind: str) -> bool:
    """Whether an address serves beyond this machine (anything but loopback)."""
    import ipaddress
    try:
        return not ipaddress.ip_address(bind).is_loopback
    except ValueError:
        return bind != "localhost"
