"""Every request labctl sends a Docker engine has a bound, and an engine that lets it pass
ends the command with one line naming the call, never a hang.

The docker SDK's API client is a requests.Session: every call it makes, whichever of the
SDK's methods makes it, goes through Session.request, and a response it streams goes
through one of two readers. BoundedAPIClient chooses each request's bound in the first and
turns a timeout, in either, into EngineTimeout: an EngineError (exit code 4) naming the
call. A bound is how long the engine may stay silent (a read timeout, per read, not per
call), so a build that keeps printing or a long save that keeps coming is never cut short.

    any call                   ENGINE_TIMEOUT (60 s), or LABCTL_ENGINE_TIMEOUT seconds
    a stop or a restart        that plus the container's grace (the SDK adds it)
    a wait with a bound        the caller's: wait(timeout=...) is a deadline of its own
    a wait without one         WAIT_TIMEOUT (the SDK's containers.run waits so)
    an image's build, import,  IMAGE_TIMEOUT at least: a build step may be silent for
    load or save               minutes, and a load answers once it has unpacked it all
    the event stream           none: it is silent until something happens

Exempt by design, past their bounded request: the output of exec (it lasts as long as the
program; a check's command and labctl's own execs, routes and readiness, are read
with a deadline, ContainerEngine.exec_bounded), logs
--follow and attach (as long as the container runs), and a shell (as long as its user
likes): the SDK reads those with no timeout.
"""

from __future__ import annotations

import os
import re
import socket
from contextlib import AbstractContextManager, contextmanager
from typing import Any, Iterator
from urllib.parse import parse_qs, unquote, urlsplit

import docker
import requests
import requests.exceptions
import urllib3.exceptions

from ..errors import EngineError, UsageError, one_line

VARIABLE = "LABCTL_ENGINE_TIMEOUT"
ENGINE_TIMEOUT = 60     # seconds; an engine at 300 hosts answers any call it answers at once well within it
WAIT_TIMEOUT = 900      # seconds a container may run before a wait with no bound of its own gives up
IMAGE_TIMEOUT = 1800    # seconds an image build, import, load or save may stay silent
MAX_CALL_TEXT = 120

_API_VERSION = re.compile(r"^/v\d+\.\d+(?=/)")
_FULL_ID = re.compile(r"\b([0-9a-f]{12})[0-9a-f]{52}\b")
_IMAGE_CALLS = re.compile(r"POST /(build|images/create|images/load)|GET /images/(.+/)?get")
_WAIT_CALL = re.compile(r"POST /containers/[^/]+/wait")
_FOLLOWING_CALLS = re.compile(r"GET /containers/[^/]+/logs|POST /containers/[^/]+/attach")
_UNBOUNDED_CALLS = ("GET /events",)
_BOUND = "_labctl_bound"   # (call, seconds) kept on a response, for the reading of its body


def engine_timeout() -> int:
    """The bound of an engine call, in seconds: LABCTL_ENGINE_TIMEOUT, else ENGINE_TIMEOUT."""
    text = os.environ.get(VARIABLE, "").strip()
    if not text:
        return ENGINE_TIMEOUT
    try:
        seconds = int(text)
    except ValueError:
        seconds = 0
    if seconds < 1:
        raise UsageError(f"{VARIABLE}={one_line(text, 40)}: expected whole seconds above 0, "
                         f"such as {ENGINE_TIMEOUT}")
    return seconds


def call_name(method: str | bytes, url: str | bytes) -> str:
    """The call as the engine's API names it: `GET /containers/json`, with the API version
    left out and a full id cut to the 12 characters docker shows."""
    method = method.decode() if isinstance(method, bytes) else method
    url = url.decode() if isinstance(url, bytes) else url
    path = _FULL_ID.sub(r"\1", unquote(_API_VERSION.sub("", urlsplit(url).path, count=1))) or "/"
    return one_line(f"{method.upper()} {path}", MAX_CALL_TEXT)


def bound_for(call: str, given: Any, default: int) -> Any:
    """The timeout a request gets: the caller's, else one for what the call does."""
    if _IMAGE_CALLS.fullmatch(call):
        return max(given, IMAGE_TIMEOUT) if isinstance(given, (int, float)) else \
            given if given is not None else IMAGE_TIMEOUT
    if given is not None:
        return given
    if call in _UNBOUNDED_CALLS:
        return None
    return WAIT_TIMEOUT if _WAIT_CALL.fullmatch(call) else default


def _said(call: str, seconds: float, where: str) -> str:
    if _WAIT_CALL.fullmatch(call):
        return (f"the container did not end within {seconds:g}s "
                f"(the Docker engine{where} gave no answer to '{call}')")
    longer = "" if _IMAGE_CALLS.fullmatch(call) else f", or allow it longer with {VARIABLE}=SECONDS"
    there = " on its machine" if where else ""
    return (f"the Docker engine{where} did not answer '{call}' within {seconds:g}s: is dockerd stuck? "
            f"('docker info'{there} tells; restart dockerd{longer})")


class EngineTimeout(EngineError, requests.exceptions.ReadTimeout):
    """An engine call ran past its bound, in one line naming the call and what to do. It is
    still a requests ReadTimeout, so code that waits on purpose and counts on a timeout (a
    wait bounded to see whether a container ends soon) goes on catching it."""

    def __init__(self, call: str, seconds: float, where: str = ""):
        self.call, self.seconds, self.where = one_line(call, MAX_CALL_TEXT), seconds, where
        super().__init__(_said(self.call, seconds, where))


def is_timeout(exc: BaseException) -> bool:
    """Whether `exc` is a read or connect timeout, as requests, urllib3 or a socket says it
    (a body read after the request gives urllib3's, or requests' ConnectionError around it)."""
    if isinstance(exc, (requests.exceptions.Timeout, urllib3.exceptions.TimeoutError, socket.timeout)):
        return True
    return (isinstance(exc, requests.exceptions.ConnectionError) and bool(exc.args)
            and isinstance(exc.args[0], urllib3.exceptions.TimeoutError))


def stuck_engine(exc: BaseException) -> EngineTimeout | None:
    """The EngineTimeout in `exc` or behind it: the SDK wraps whatever stops its version
    negotiation in a DockerException."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, EngineTimeout):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def _seconds(timeout: Any) -> float:
    """The read part of a requests timeout: a number, or (connect, read)."""
    read = timeout[1] if isinstance(timeout, tuple) else timeout
    return float(read) if isinstance(read, (int, float)) else 0.0


def _follows(response: requests.Response) -> bool:
    """Whether a streamed response follows a container for as long as it runs (logs
    --follow, attach): read with no timeout, as the SDK reads it."""
    call = getattr(response, _BOUND, ("", 0))[0]
    if not _FOLLOWING_CALLS.fullmatch(call):
        return False
    return "attach" in call or parse_qs(urlsplit(response.url).query).get("follow") == ["1"]


class BoundedAPIClient(docker.APIClient):
    """docker's API client, each request bounded and its timeout said in one line."""

    where = ""   # after "the Docker engine" in what a timeout says: " at ssh://..." over SSH

    def request(self, method: str | bytes, url: str | bytes,
                *args: Any, **kwargs: Any) -> requests.Response:
        call = call_name(method, url)
        kwargs["timeout"] = bound = bound_for(call, kwargs.get("timeout"), self.timeout)
        with self._in_time(call, bound):
            response = super().request(method, url, *args, **kwargs)
        setattr(response, _BOUND, (call, bound))
        return response

    @contextmanager
    def _in_time(self, call: str, bound: Any) -> Iterator[None]:
        try:
            yield
        except EngineTimeout:
            raise
        except (requests.exceptions.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
            if not is_timeout(exc):
                raise
            raise EngineTimeout(call, _seconds(bound), self.where) from None

    def _body_in_time(self, response: requests.Response) -> AbstractContextManager[None]:
        return self._in_time(*getattr(response, _BOUND, ("a streamed call", self.timeout)))

    # The SDK's two readers of a streamed body: builds, loads, pulls, stats and the events
    # (chunked), and saves, copies out of a container and a tty's logs (raw).
    def _stream_helper(self, response: requests.Response, decode: bool = False) -> Iterator[Any]:
        with self._body_in_time(response):
            yield from super()._stream_helper(response, decode)  # type: ignore[misc]

    def _stream_raw_result(self, response: requests.Response, chunk_size: int = 1,
                           decode: bool = True) -> Iterator[Any]:
        if _follows(response):
            yield from super()._stream_raw_result(response, chunk_size, decode)  # type: ignore[misc]
            return
        # The SDK would take the timeout off the socket for good; a save or a copy keeps it.
        self._raise_for_status(response)  # type: ignore[attr-defined]
        with self._body_in_time(response):
            yield from response.iter_content(chunk_size, decode)


class BoundedDockerClient(docker.DockerClient):
    """A DockerClient whose API client is a BoundedAPIClient; `from_env` builds one too."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # All a DockerClient holds is its API client.
        self.api = BoundedAPIClient(*args, **kwargs)
