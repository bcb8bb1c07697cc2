"""How the server answers when it cannot do what was asked: JSON `{"error": "<one line>"}`
with the status that says why. 400: the request itself is wrong; 403: the token may not;
404: no such host, check or capture; 409: the lab is busy (another operation holds its
lock) or the thing cannot be done now; 500: the engine or labctl failed; 503: the server
has as many pages watching as it serves."""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse

from ..errors import EngineError, LabError
from ..text import one_line

MAX_ERROR = 600          # characters of an error's line
MAX_BODY = 64 * 1024     # bytes of a JSON request body
BUSY = " is busy: "      # what labctl.ops.lock.hold says when another operation holds the lock
NO_STORE = {"Cache-Control": "no-store"}


class Refused(Exception):
    """A request answered with `status` and the one-line `message`."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def bad(message: str) -> Refused:
    return Refused(400, message)


def missing(message: str) -> Refused:
    return Refused(404, message)


def error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": one_line(message, MAX_ERROR)}, status, headers=NO_STORE)


def refusal(exc: BaseException) -> JSONResponse:
    """The answer for what an operation raised: a Refused as it says; a busy lab 409; an
    engine's failure 500; any other LabError (the request named what cannot be) 400; and
    anything else 500, saying it is a bug, without its traceback."""
    if isinstance(exc, Refused):
        return error(exc.status, str(exc))
    if isinstance(exc, LabError) and BUSY in str(exc):
        # The CLI's advice (--no-wait) is not the page's.
        return error(409, str(exc).split(" (or leave out --no-wait", 1)[0])
    if isinstance(exc, EngineError):
        return error(500, str(exc))
    if isinstance(exc, LabError):
        return error(400, str(exc))
    return error(500, f"internal error: {exc.__class__.__name__}: {exc} (a bug in labctl)")


def ok(value: Any) -> JSONResponse:
    return JSONResponse(value, headers=NO_STORE)
