"""The JSON routes. Each act route goes through the same operation as its CLI verb
(labctl.ops) and holds the lab's lock for it, refusing at once (409) where another
operation holds it; operations block, so they run in the thread pool, never on the event
loop. What a request names is checked before anything runs: 400 for a malformed request,
404 for a host, check, network or capture the lab does not have."""

from __future__ import annotations

import json
from contextlib import ExitStack
from typing import Any, Callable, TypeVar

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..model.impairment import KINDS
from ..model.faults import HOST_ACTIONS
from ..model.topology import Topology
from ..ops import faults, impairments, lifecycle
from ..ops.lock import hold
from ..text import file_part
from .auth import ACT, role_of
from .captures import Captures
from .replies import MAX_BODY, bad, missing, ok, refusal
from .served import Served
from .snapshot import lab_json

T = TypeVar("T")
PAGE_ACTIONS = ("stop", "start", "restart", "pause", "unpause")
MAX_NAMES = 1000           # names in one request
MAX_NAME = 300             # characters of one name or target
MAX_FILTER = 1000          # characters of a capture filter
PCAP = "application/vnd.tcpdump.pcap"

Handler = Callable[[Request], Any]


def answered(handler: Handler) -> Callable[[Request], Any]:
    """The route, every failure of it one line of JSON with its status."""
    async def route(request: Request) -> Response:
        try:
            return await handler(request)
        except Exception as exc:
            return refusal(exc)
    route.__name__ = handler.__name__
    return route


def served(request: Request) -> Served:
    return request.app.state.served


def captures(request: Request) -> Captures:
    return request.app.state.captures


async def body(request: Request) -> dict[str, Any]:
    """The request's JSON object (an empty body is {}), bounded in size."""
    data = b""
    async for chunk in request.stream():
        data += chunk
        if len(data) > MAX_BODY:
            raise bad(f"the request body is longer than {MAX_BODY} bytes")
    if not data.strip():
        return {}
    try:
        value = json.loads(data)
    except (ValueError, RecursionError):
        raise bad("the request body is not JSON") from None
    if not isinstance(value, dict):
        raise bad("the request body must be a JSON object")
    return value


def text(value: Any, what: str, limit: int = MAX_NAME) -> str:
    if not isinstance(value, str) or not value:
        raise bad(f"{what} must be a non-empty text")
    if len(value) > limit:
        raise bad(f"{what} is longer than {limit} characters")
    return value


def texts(value: Any, what: str) -> list[str]:
    if not isinstance(value, list) or len(value) > MAX_NAMES:
        raise bad(f"{what} must be a list of at most {MAX_NAMES} texts")
    return [text(item, f"each of {what}") for item in value]


def known_target(topology: Topology, target: str) -> str:
    """A target the lab has: NETWORK, HOST or HOST:NETWORK (what is wrong beyond that, such
    as a host not on that network, the operation says)."""
    host, _, network = target.partition(":")
    if (network and host not in topology.hosts) or (not network and target not in topology.hosts
                                                    and target not in topology.networks):
        raise missing(f"no host or network {target!r} in lab {topology.name!r}")
    return target


async def locked(request: Request, operation: str, work: Callable[[], T]) -> T:
    """`work` in the thread pool, holding the lab's lock for `operation`; refused (409) at
    once where another operation holds it."""
    here = served(request)

    def run() -> T:
        with ExitStack() as stack:
            stack.enter_context(hold(here.lab.topology, here.engine, operation, here.say, wait=False))
            return work()
    return await run_in_threadpool(run)


# -- reading ----------------------------------------------------------------------------

@answered
async def lab(request: Request) -> Response:
    chosen, engine = await run_in_threadpool(served(request).view, request.query_params.get("lab"))
    last = served(request).last_results() if chosen is served(request).lab else {}
    return ok(await run_in_threadpool(lab_json, chosen, engine, last, role_of(request.scope) == ACT))


# -- acting -----------------------------------------------------------------------------

@answered
async def checks(request: Request) -> Response:
    asked = await body(request)
    names = texts(asked.get("names") or [], "names")
    here = served(request)
    known = {check.name for check in here.lab.checks}
    unknown = [name for name in names if name not in known]
    if unknown:
        raise missing(f"no check named {unknown[0]!r} in lab {here.name!r}")
    results, seconds = await locked(request, "check", lambda: lifecycle.check(here.lab, here.engine, names or None))
    return ok({"seconds": seconds, "results": [
        {"name": result.name, "passed": result.passed, "reason": result.reason, "elapsed_ms": result.elapsed_ms,
         "source": result.source, "target": result.target, "port": result.port, "protocol": result.protocol}
        for result in results]})


@answered
async def impair(request: Request) -> Response:
    asked = await body(request)
    here = served(request)
    target = known_target(here.lab.topology, text(asked.get("target"), "target"))
    given = asked.get("values")
    if not isinstance(given, dict) or not given:
        raise bad("values must be an object of impairments, such as {\"delay\": \"100ms\"}: "
                  + ", ".join(KINDS))
    values = {}
    for name, value in given.items():
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise bad(f"values: {name!r} must be a text such as 100ms or 5%, or a number")
        values[text(name, "an impairment's name", 40)] = text(str(value), f"the value of {name!r}", 100)
    await locked(request, "impair", lambda: impairments.change(here.lab.topology, here.engine, target, values,
                                                               False, here.say))
    return ok({"target": target, "values": values})


@answered
async def clear(request: Request) -> Response:
    asked = await body(request)
    here = served(request)
    given = asked.get("target")
    target = None if given is None else known_target(here.lab.topology, text(given, "target"))
    await locked(request, "impair", lambda: impairments.change(here.lab.topology, here.engine, target, {},
                                                               True, here.say))
    return ok({"target": target})


@answered
async def partition(request: Request) -> Response:
    asked = await body(request)
    here = served(request)
    sides = asked.get("sides")
    if not isinstance(sides, list) or len(sides) != 2:
        raise bad("sides must be two lists of hosts: [[\"alice\"], [\"bob\", \"echo\"]]")
    sides = [texts(side, "each side") for side in sides]
    if not all(sides):
        raise bad("each side of a partition needs a host")
    for name in sides[0] + sides[1]:
        if name not in here.lab.topology.hosts:
            raise missing(f"no host {name!r} in lab {here.name!r}")
    both = set(sides[0]) & set(sides[1])
    if both:
        raise bad(f"{', '.join(sorted(both))} cannot be on both sides of a partition")
    await locked(request, "partition", lambda: faults.partition(here.lab.topology, here.engine, sides, here.say))
    return ok({"sides": sides})


@answered
async def heal(request: Request) -> Response:
    await body(request)
    here = served(request)
    healed = await locked(request, "heal", lambda: faults.heal(here.lab.topology, here.engine, here.say))
    return ok({"healed": healed})


@answered
async def host_action(request: Request) -> Response:
    here = served(request)
    name, action = request.path_params["name"], request.path_params["action"]
    if action not in PAGE_ACTIONS or action not in HOST_ACTIONS:
        raise missing(f"no host action {action!r}; the page's: " + ", ".join(PAGE_ACTIONS))
    if name not in here.lab.topology.hosts:
        raise missing(f"no host {name!r} in lab {here.name!r}")
    await body(request)

    def act() -> str:
        faults.host_action(here.lab.topology, here.engine, name, action, here.say)
        return faults.state_of(here.lab.topology, here.engine, name)
    state = await locked(request, action, act)
    return ok({"host": name, "action": action, "state": state})


# -- captures ---------------------------------------------------------------------------

@answered
async def capture_list(request: Request) -> Response:
    return ok({"captures": captures(request).listed()})


@answered
async def capture_start(request: Request) -> Response:
    asked = await body(request)
    here = served(request)
    target = known_target(here.lab.topology, text(asked.get("target"), "target"))
    expression = asked.get("filter") or ""
    if not isinstance(expression, str) or len(expression) > MAX_FILTER:
        raise bad(f"filter must be a tcpdump expression of at most {MAX_FILTER} characters")
    taken = await locked(request, "capture", lambda: captures(request).start(here.lab.topology, here.engine,
                                                                            target, expression))
    return ok({"id": taken.id})


@answered
async def capture_stop(request: Request) -> Response:
    number = request.path_params["id"]
    captures(request).running(number)
    taken = await locked(request, "capture", lambda: captures(request).stop(number))
    return ok({"packets": taken.packets, "bytes": len(taken.capture.data), "download": f"api/captures/{taken.id}.pcap"})


@answered
async def capture_pcap(request: Request) -> Response:
    taken = captures(request).pcap(request.path_params["id"])
    name = f"capture-{taken.id}-{file_part(taken.target)}.pcap"
    return Response(taken.capture.data, media_type=PCAP, headers={
        "Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store"})


# -- the class dashboard ----------------------------------------------------------------

@answered
async def grade(request: Request) -> Response:
    return ok(await run_in_threadpool(served(request).board.as_json))


@answered
async def regrade(request: Request) -> Response:
    await body(request)
    student = request.path_params["student"]
    served(request).board.regrade(student)
    return JSONResponse({"regrading": student}, 202, headers={"Cache-Control": "no-store"})


def routes() -> list[Route]:
    return [
        Route("/api/lab", lab, methods=["GET"]),
        Route("/api/checks", checks, methods=["POST"]),
        Route("/api/impair", impair, methods=["POST"]),
        Route("/api/impair/clear", clear, methods=["POST"]),
        Route("/api/partition", partition, methods=["POST"]),
        Route("/api/heal", heal, methods=["POST"]),
        Route("/api/hosts/{name}/{action}", host_action, methods=["POST"]),
        Route("/api/captures", capture_list, methods=["GET"]),
        Route("/api/captures", capture_start, methods=["POST"]),
        Route("/api/captures/{id}/stop", capture_stop, methods=["POST"]),
        Route("/api/captures/{id}.pcap", capture_pcap, methods=["GET"]),
        Route("/api/grade", grade, methods=["GET"]),
        Route("/api/grade/{student:path}/regrade", regrade, methods=["POST"]),
    ]

