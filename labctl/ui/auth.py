"""Who may do what: every request, whatever it asks for (a page, a static file, the API, the
event stream, a terminal's WebSocket), passes here first.

Two random tokens are made at start: the act token watches, acts and opens terminals; the
view token only watches. A request carries one as `?token=` or in the X-Labctl-Token header.
Without a valid one it gets 403 and an empty body, and nothing runs. A request with an
Origin header (a browser sends one with every POST and WebSocket) must come from the
server's own origin, or a page elsewhere could drive the lab through a browser that holds a
token. A server on a loopback address also answers only requests whose Host header names the
loopback (localhost, 127.0.0.1, [::1]...): a page elsewhere that rebinds its own name to
this machine (DNS rebinding) is its own origin, and would pass the Origin check, but its
requests name its host, and are refused, token or not. A view token may use no route that
acts: no POST, no WebSocket."""

from __future__ import annotations

import hmac
import ipaddress
import json
import secrets
from dataclasses import dataclass, field
from urllib.parse import parse_qsl

from starlette.types import ASGIApp, Receive, Scope, Send

ACT, VIEW = "act", "view"
HEADER = b"x-labctl-token"
WATCH_ONLY = "this token may only watch"
READING = ("GET", "HEAD")
ROLE = "labctl.role"     # where a request's role is kept in its ASGI scope
MAX_QUERY = 8192         # bytes of a query string read for its token


@dataclass(frozen=True)
class Tokens:
    act: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    view: str = field(default_factory=lambda: secrets.token_urlsafe(24))

    def role(self, given: str | None) -> str | None:
        """ACT, VIEW, or None for a token that is neither (compared in constant time)."""
        if not given:
            return None
        offered = given.encode("utf-8", "replace")
        if hmac.compare_digest(offered, self.act.encode()):
            return ACT
        if hmac.compare_digest(offered, self.view.encode()):
            return VIEW
        return None


def token_of(scope: Scope) -> str | None:
    """The token a request carries: its X-Labctl-Token header, else its `token` parameter."""
    for name, value in scope.get("headers") or []:
        if name == HEADER:
            return value.decode("latin-1")
    query = scope.get("query_string") or b""
    if len(query) > MAX_QUERY:
        return None
    for name, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
        if name == "token":
            return value
    return None


def same_origin(scope: Scope) -> bool:
    """True without an Origin header; with one, only when it is this server's own origin,
    as the Host header names it."""
    headers = dict(scope.get("headers") or [])
    origin = headers.get(b"origin")
    if origin is None:
        return True
    host = headers.get(b"host")
    return host is not None and origin == b"http://" + host


def loopback_host(scope: Scope) -> bool:
    """Whether the request's Host header names this machine's loopback: localhost or a
    loopback address, with any port (an SSH tunnel may forward another). A page elsewhere
    can make a browser send its own name only."""
    host = dict(scope.get("headers") or []).get(b"host")
    if host is None:
        return False
    name = host.decode("latin-1").lower()
    name = name[1:].partition("]")[0] if name.startswith("[") else name.partition(":")[0]
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def acts(scope: Scope) -> bool:
    """Whether the request changes something or opens a terminal (act routes)."""
    return scope["type"] == "websocket" or scope.get("method", "GET") not in READING


class Guard:
    """The ASGI middleware that lets through only what the token and the origin allow."""

    def __init__(self, app: ASGIApp, tokens: Tokens, loopback: bool = False):
        self.app, self.tokens, self.loopback = app, tokens, loopback

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        role = self.tokens.role(token_of(scope))
        if role is None or not same_origin(scope) or (self.loopback and not loopback_host(scope)):
            await _forbid(scope, send, b"")
            return
        if role != ACT and acts(scope):
            await _forbid(scope, send, json.dumps({"error": WATCH_ONLY}).encode())
            return
        scope[ROLE] = role
        await self.app(scope, receive, send)


async def _forbid(scope: Scope, send: Send, body: bytes) -> None:
    """403 with `body`. A WebSocket gets the same answer to its handshake where the server can
    give one (the ASGI websocket.http.response extension; uvicorn can), else a plain 403."""
    headers = [(b"content-length", str(len(body)).encode()), (b"cache-control", b"no-store")]
    if body:
        headers.append((b"content-type", b"application/json"))
    prefix = "http"
    if scope["type"] == "websocket":
        if "websocket.http.response" not in (scope.get("extensions") or {}):
            await send({"type": "websocket.close", "code": 1008})
            return
        prefix = "websocket.http"
    await send({"type": f"{prefix}.response.start", "status": 403, "headers": headers})
    await send({"type": f"{prefix}.response.body", "body": body})


def role_of(scope: Scope) -> str:
    return scope.get(ROLE, VIEW)
