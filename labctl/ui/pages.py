"""The pages and the files they load, all from labctl/ui/static/ (in the wheel as package
data). A page is an HTML file there with `{{ token }}` replaced by the request's token
(HTML-escaped) and `{{ can_act }}` by true or false. A static file is found by walking from
that folder one plain name at a time, opening each without following a symbolic link:
nothing outside it, no hidden file, no link is ever served."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..text import html
from .auth import ACT, role_of, token_of
from .replies import Refused, error, missing

STATIC = Path(__file__).parent / "static"
MAX_FILE = 16 * 1024 * 1024       # bytes of one static file
TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
         ".mjs": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
         ".json": "application/json", ".map": "application/json", ".svg": "image/svg+xml",
         ".png": "image/png", ".ico": "image/x-icon", ".woff2": "font/woff2", ".woff": "font/woff",
         ".txt": "text/plain; charset=utf-8", ".md": "text/plain; charset=utf-8"}
PLAIN = "text/plain; charset=utf-8"    # a licence file, or anything not named above
# Scripts and styles from the server only; frames, forms and plugins from nowhere. Styles may
# be inline: xterm.js and the graph library set theirs from script.
POLICY = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
          "font-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'self'; form-action 'none'; "
          "frame-ancestors 'none'")
HEADERS = {"Content-Security-Policy": POLICY, "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
           "X-Frame-Options": "DENY"}


def read_static(root: Path, relative: str) -> bytes:
    """The file at `relative` under `root`, walked one plain name at a time, never through a
    symbolic link; 404 for anything else."""
    parts = relative.split("/")
    if not relative or any(not part or part.startswith(".") or "\\" in part or "\0" in part for part in parts):
        raise missing("no such file")
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
    try:
        folder = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        raise missing("no such file") from None
    try:
        for part in parts[:-1]:
            inner = os.open(part, flags | os.O_DIRECTORY, dir_fd=folder)
            os.close(folder)
            folder = inner
        descriptor = os.open(parts[-1], flags, dir_fd=folder)
        try:
            info = os.fstat(descriptor)
            if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_FILE:
                raise missing("no such file")
            with os.fdopen(descriptor, "rb", closefd=False) as stream:
                return stream.read(MAX_FILE)
        finally:
            os.close(descriptor)
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ELOOP, errno.ENOTDIR, errno.EISDIR, errno.ENXIO, errno.EACCES):
            raise missing("no such file") from None
        raise
    finally:
        os.close(folder)


def content_type(name: str) -> str:
    return TYPES.get(Path(name).suffix.lower(), PLAIN)


def filled(page: bytes, token: str, can_act: bool) -> bytes:
    """A page with its token and what it may do filled in."""
    text = page.decode("utf-8")
    return text.replace("{{ token }}", html(token)).replace("{{ can_act }}", "true" if can_act else "false").encode()


def static_root(request: Request) -> Path:
    return request.app.state.static


async def page(request: Request, name: str) -> Response:
    try:
        data = await run_in_threadpool(read_static, static_root(request), name)
    except Refused:
        return error(404, f"the page {name} is not installed")
    body = filled(data, token_of(request.scope) or "", role_of(request.scope) == ACT)
    return Response(body, media_type=TYPES[".html"], headers={**HEADERS, "Cache-Control": "no-store"})


async def index(request: Request) -> Response:
    return await page(request, "index.html")


async def terminal(request: Request) -> Response:
    host = request.path_params["host"]
    if host not in request.app.state.served.lab.topology.hosts and "lab" not in request.query_params:
        return error(404, f"no host {host!r} in lab {request.app.state.served.name!r}")
    return await page(request, "terminal.html")


async def terminals(request: Request) -> Response:
    return await page(request, "terminals.html")


async def dashboard(request: Request) -> Response:
    return await page(request, "grade.html")


async def static(request: Request) -> Response:
    name = request.path_params["path"]
    try:
        data = await run_in_threadpool(read_static, static_root(request), name)
    except Refused as exc:
        return error(exc.status, str(exc))
    return Response(data, media_type=content_type(name), headers={**HEADERS, "Cache-Control": "no-cache"})


async def report(request: Request) -> Response:
    """A student's report, as `labctl grade` wrote it: a page with no script, its every
    text escaped; served so that it could run none anyway."""
    try:
        path = request.app.state.served.board.report(request.path_params["number"])
        data = await run_in_threadpool(read_static, path.parent, path.name)
    except Refused as exc:
        return error(exc.status, str(exc))
    return Response(data, media_type=TYPES[".html"], headers={
        **HEADERS, "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src data:",
        "Cache-Control": "no-store"})


def routes() -> list[Route]:
    return [
        Route("/", index, methods=["GET"]),
        Route("/host/{host}", terminal, methods=["GET"]),
        Route("/terminals", terminals, methods=["GET"]),
        Route("/grade", dashboard, methods=["GET"]),
        Route("/grade/report/{number:int}", report, methods=["GET"]),
        Route("/static/{path:path}", static, methods=["GET"]),
    ]
