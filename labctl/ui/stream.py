"""GET /api/events: the lab's events as server-sent events, one subscription per open page.

First `event: ready` once subscribed, then `data: <event as JSON>` per event. Nothing is sent
on a timer: an idle page costs nothing. The subscription's blocking reads happen in a thread
of its own (not the thread pool, which a page left open would hold), handing each event to
the event loop. The stream also listens for the page going away, and then closes the
subscription at once, without waiting for an event to fail to send. Each open page costs a
socket, threads and a connection to the engine's stream, so at most MOST_STREAMS are open
at once: past that, 503 (whoever holds even the view token could otherwise open pages until
the machine has no threads left)."""

from __future__ import annotations

import asyncio
import json
import threading

import anyio
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from ..ops.events import Event, Subscription, subscribe
from .replies import Refused, refusal

READY = b"event: ready\ndata: {}\n\n"
MOST_WAITING = 2 << 20   # bytes of events waiting for a slow page; past that, the newest are dropped
MOST_STREAMS = 256       # pages watching at once (a classroom's, each with the view token)
HEADERS = [(b"content-type", b"text/event-stream; charset=utf-8"), (b"cache-control", b"no-store"),
           (b"x-accel-buffering", b"no")]


def data(event: Event) -> bytes:
    # ASCII JSON on one line: no line break or separator of any kind reaches the stream.
    return b"data: " + json.dumps(event.as_json(), ensure_ascii=True, separators=(",", ":")).encode() + b"\n\n"


class Backlog:
    """What waits for one page, as it will be sent: at most MOST_WAITING bytes of it (counted
    in bytes, not events: one event may be a thousand times another), so a page that stops
    reading holds that much memory and no more. Used from the event loop's thread only."""

    def __init__(self) -> None:
        self.waiting: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.size = 0

    def put(self, chunk: bytes | None) -> None:
        """`chunk`, or None for the end (always taken); a chunk past the bound is dropped."""
        if chunk is None or self.size + len(chunk) <= MOST_WAITING:
            self.size += len(chunk or b"")
            self.waiting.put_nowait(chunk)

    async def get(self) -> bytes | None:
        chunk = await self.waiting.get()
        self.size -= len(chunk or b"")
        return chunk


def _pump(subscription: Subscription, loop: asyncio.AbstractEventLoop, backlog: Backlog) -> None:
    """In its own thread: each event of the subscription onto the loop, then None at its end."""
    try:
        for event in subscription:
            loop.call_soon_threadsafe(backlog.put, data(event))
        loop.call_soon_threadsafe(backlog.put, None)
    except RuntimeError:
        pass    # the loop has closed: the server is ending


class EventStream:
    """The ASGI response that relays one subscription until either side ends."""

    def __init__(self, subscription: Subscription):
        self.subscription = subscription

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        streams: set[Subscription] = scope["app"].state.streams
        streams.add(self.subscription)
        backlog = Backlog()
        threading.Thread(target=_pump, args=(self.subscription, asyncio.get_running_loop(), backlog),
                         name="labctl-ui-events", daemon=True).start()
        try:
            async with anyio.create_task_group() as group:
                async def left() -> None:
                    while (await receive())["type"] != "http.disconnect":
                        pass
                    group.cancel_scope.cancel()
                group.start_soon(left)
                try:
                    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
                    await send({"type": "http.response.body", "body": READY, "more_body": True})
                    while (chunk := await backlog.get()) is not None:
                        await send({"type": "http.response.body", "body": chunk, "more_body": True})
                    await send({"type": "http.response.body", "body": b"", "more_body": False})
                except OSError:
                    pass    # the page went away while an event was on its way
                group.cancel_scope.cancel()
        finally:
            streams.discard(self.subscription)
            with anyio.CancelScope(shield=True):
                await run_in_threadpool(self.subscription.close)


def end_all(streams: set[Subscription]) -> None:
    """End every open stream (the server is stopping): each page's subscription closes, so
    its stream ends at once rather than when the server gives up waiting for it."""
    for subscription in list(streams):
        subscription.close()


class Events:
    """The route: an ASGI app of its own, as it answers with a stream it manages itself."""

    def __init__(self) -> None:
        self.opening = 0    # streams being subscribed, not yet among the app's open ones

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        try:
            if len(request.app.state.streams) + self.opening >= MOST_STREAMS:
                raise Refused(503, f"{MOST_STREAMS} pages are watching this server already; close one")
            self.opening += 1
            try:
                chosen, engine = await run_in_threadpool(request.app.state.served.view, request.query_params.get("lab"))
                subscription = await run_in_threadpool(subscribe, chosen.topology, engine, True)
            finally:
                self.opening -= 1
        except Exception as exc:
            await refusal(exc)(scope, receive, send)
            return
        await EventStream(subscription)(scope, receive, send)


def routes() -> list[Route]:
    return [Route("/api/events", Events(), methods=["GET"])]
