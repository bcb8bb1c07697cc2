"""The server put together: the routes of the pages, the API, the event stream and the
terminals, behind the guard that every request passes (labctl.ui.auth)."""

from __future__ import annotations

from pathlib import Path

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from . import api, pages, stream, terminal
from .auth import Guard, Tokens
from .captures import Captures
from .replies import error
from .served import Served


async def _not_found(request: Request, exc: Exception) -> Response:
    return error(404, "no such page or route")


async def _not_allowed(request: Request, exc: Exception) -> Response:
    return error(405, f"{request.method} is not how this route is used")


def build_app(served: Served, tokens: Tokens, static: Path = pages.STATIC, loopback: bool = False) -> Starlette:
    """The ASGI app serving `served` to whoever holds one of `tokens`; `loopback`: only in
    requests whose Host names this machine's loopback (labctl.ui.auth.loopback_host)."""
    routes: list[BaseRoute] = [*pages.routes(), *api.routes(), *stream.routes(), *terminal.routes()]
    app = Starlette(routes=routes, middleware=[Middleware(Guard, tokens=tokens, loopback=loopback)],
                    exception_handlers={404: _not_found, 405: _not_allowed})
    app.state.served, app.state.tokens, app.state.static = served, tokens, static
    app.state.captures = Captures()
    app.state.streams = set()    # the open pages' subscriptions (labctl.ui.stream)
    return app
