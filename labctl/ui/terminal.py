"""WS /ws/terminal/{host}: a shell on a host, in the page, through the same exec with a
terminal that `labctl shell` opens (labctl.ops.shell).

Binary frames carry the terminal's bytes both ways, as they are: Ctrl-C is the byte 0x03 on
its way to the host's terminal, which interrupts the program there. A text frame
`{"resize": [rows, cols]}` resizes the terminal. When the shell ends the server sends the
text frame `{"exit": code}` and closes; when the page closes the socket, the shell's
connection is closed. A terminal that cannot open is a text frame `{"error": "<one line>"}`
and a close with 4000 + the status an HTTP request would have had (4404: no such host).

The connection to the host blocks, so a thread of its own reads it; it waits while the
page is slow to take what it has read, so output is never piled up in memory."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import socket
import threading
from typing import Any

import anyio
from starlette.concurrency import run_in_threadpool
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from ..engines.base import Terminal
from ..ops.shell import open_shell
from ..text import one_line
from .replies import MAX_ERROR, missing, refusal

CHUNK = 65536
WAITING = 64              # chunks read ahead of the page
LARGEST = 1000            # rows or columns
DEFAULT_SIZE = (24, 80)
TERM = "xterm-256color"   # what xterm.js is


def size(value: Any, default: int) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError, OverflowError):   # OverflowError: JSON's 1e999 is infinity
        return default
    return min(max(number, 1), LARGEST)


def _read(connection: Any, loop: asyncio.AbstractEventLoop, output: asyncio.Queue[bytes | None],
          ended: threading.Event) -> None:
    """In its own thread: what the terminal says, onto `output`; None once it ends."""
    while True:
        try:
            data = connection.recv(CHUNK)
        except OSError:
            data = b""
        try:
            handed = asyncio.run_coroutine_threadsafe(output.put(data or None), loop)
        except RuntimeError:
            return    # the loop has closed
        while True:
            try:
                handed.result(timeout=1.0)
                break
            except concurrent.futures.TimeoutError:
                if ended.is_set():   # nobody takes it any more
                    handed.cancel()
                    return
            except concurrent.futures.CancelledError:
                return
        if not data:
            return


def _close(connection: Any) -> None:
    try:
        connection.shutdown(socket.SHUT_RDWR)   # wakes the reading thread
    except (OSError, AttributeError):
        pass
    try:
        connection.close()
    except OSError:
        pass


async def _refuse(websocket: WebSocket, exc: BaseException) -> None:
    answer = refusal(exc)
    message = json.loads(bytes(answer.body)).get("error", "")
    await websocket.send_text(json.dumps({"error": one_line(message, MAX_ERROR)}))
    await websocket.close(4000 + answer.status_code)


async def relay(websocket: WebSocket, terminal: Terminal) -> None:
    """The page and the terminal joined until either ends."""
    loop = asyncio.get_running_loop()
    output: asyncio.Queue[bytes | None] = asyncio.Queue(WAITING)
    ended = threading.Event()
    connection = terminal.connection
    threading.Thread(target=_read, args=(connection, loop, output, ended), name="labctl-ui-terminal",
                     daemon=True).start()
    shell_ended = False

    async def to_page() -> None:
        nonlocal shell_ended
        try:
            while (data := await output.get()) is not None:
                await websocket.send_bytes(data)
            shell_ended = True
        except (WebSocketDisconnect, OSError, RuntimeError):
            pass    # the page has gone
        group.cancel_scope.cancel()

    async def from_page() -> None:
        try:
            while True:
                message = await websocket.receive()
                if message["type"] == "websocket.disconnect":
                    break
                if message.get("bytes"):
                    await run_in_threadpool(connection.sendall, message["bytes"])
                elif message.get("text"):
                    await _command(message["text"], terminal)
        except (WebSocketDisconnect, OSError, RuntimeError):
            pass    # the page or the shell has gone; the shell's output says the rest
        group.cancel_scope.cancel()

    try:
        async with anyio.create_task_group() as group:
            group.start_soon(to_page)
            group.start_soon(from_page)
    finally:
        ended.set()
        _close(connection)
    if shell_ended:
        try:
            code = await run_in_threadpool(terminal.exit_code)
            await websocket.send_text(json.dumps({"exit": code}))
            await websocket.close(1000)
        except Exception:
            pass   # the page has gone too


async def _command(text: str, terminal: Terminal) -> None:
    """A text frame: {"resize": [rows, cols]}; anything else is ignored."""
    try:
        command = json.loads(text)
    except ValueError:
        return
    wanted = command.get("resize") if isinstance(command, dict) else None
    if isinstance(wanted, list) and len(wanted) == 2:
        await run_in_threadpool(terminal.resize, size(wanted[0], DEFAULT_SIZE[0]), size(wanted[1], DEFAULT_SIZE[1]))


async def terminal(websocket: WebSocket) -> None:
    await websocket.accept()
    host = websocket.path_params["host"]
    rows = size(websocket.query_params.get("rows"), DEFAULT_SIZE[0])
    cols = size(websocket.query_params.get("cols"), DEFAULT_SIZE[1])
    try:
        lab, engine = await run_in_threadpool(websocket.app.state.served.view, websocket.query_params.get("lab"))
        if host not in lab.topology.hosts:
            raise missing(f"no host {host!r} in lab {lab.topology.name!r}")
        opened = await run_in_threadpool(open_shell, lab.topology, engine, host, TERM)
    except Exception as exc:
        await _refuse(websocket, exc)
        return
    try:
        await run_in_threadpool(opened.resize, rows, cols)
    except Exception:
        pass   # a terminal of the default size still serves
    await relay(websocket, opened)


def routes() -> list[WebSocketRoute]:
    return [WebSocketRoute("/ws/terminal/{host}", terminal)]
