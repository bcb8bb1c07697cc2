"""The check vocabulary: what lab.yaml's `checks:` may say, parsed into `CheckSpec`s.

A check reads as the sentence a person would say: from alice, to web:8080, over http,
GET /health, expect 200 within 10s, and the server saw it from alice.

This module holds what every check shares (who, where, how long, what the server must
have seen) and the readers a kind parses its own block with. What a kind's block holds,
what it asks the probe and how it is judged live in that kind's module under kinds/.
Expectations are judged on labctl's side; the probe in the container only reports what it
observed.
"""

from __future__ import annotations

import math
import random
import re
from ipaddress import ip_address
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..model.topology import MULTICAST, MULTICAST6, Topology, checked_path
from ..model.yamlsource import KeyPath, Source, describe, quote
from .expectation import Expectation, parse_expectation

from .evidence import evidence_problem

if TYPE_CHECKING:
    from .kind import CheckKind

DEFAULT_TIMEOUT = 3.0
# The keys of a check's `load:` and `server:`, with what each means (`labctl schema`).
LOAD_KEYS = {
    "clients": "how many clients run at once (1 to 256)",
    "requests": "how many exchanges in all; or give duration",
    "duration": "how long the clients keep going, such as 10s; or give requests",
    "min_throughput": "the fewest exchanges per second, such as 100/s",
    "max_error_rate": "the largest share of exchanges that may fail, such as 1%",
    "max_p99": "the longest the 99th percentile exchange may take, such as 50ms",
}
SERVER_KEYS = {
    "from": "the host the server must have seen the request from (the check's from unless given)",
    "count": "how many exchanges the server must have seen",
    "received": "what the server received: exact text, or {contains|regex|json|length: ...}",
    "log": "a line of the server's output: text it contains, or {regex: ...}; {client} is the client's address",
}

# What a lab's checks may send. A probe's request travels base64-encoded in the argv of a
# `docker exec`, so one payload stays modest; the lab's total bounds what validation makes.
# The repository's largest is {random: 65536}.
MAX_PAYLOAD = 1 << 20           # bytes in one payload (send, body, a step)
MAX_LAB_PAYLOAD = 8 << 20       # bytes in all of a lab file's payloads together


@dataclass
class Step:
    """One request and the answer expected to it, on a connection shared by all steps."""
    send: bytes = b""
    expect: Expectation | None = None


@dataclass
class LoadOptions:
    clients: int = 1
    requests: int | None = None
    duration: float | None = None
    min_throughput: float | None = None     # exchanges per second
    max_error_rate: float | None = None     # 0..1
    max_p99_ms: float | None = None


@dataclass
class ServerSide:
    """What the server must have seen. `auto`: on for exchanges with built-in services."""
    mode: str = "auto"                      # auto | on | off
    peer: str | None = None                 # the host the request must come from (default: from)
    count: int | None = None                # how many exchanges (default: one per connection)
    received: Expectation | None = None     # what the server received (built-in services)
    log: Expectation | None = None          # a line in the server host's output; {client} is
                                            # replaced by the client's expected address


@dataclass
class CheckSpec:
    name: str
    source: str                    # host the client runs on ('' for a wire check)
    target: str | None             # host the server runs on (None: a run check with no server)
    port: int | None
    kind: CheckKind
    steps: list[Step] = field(default_factory=list)
    expect_error: str | None = None
    error_reason: Expectation | None = None
    timeout: float = DEFAULT_TIMEOUT
    latency_ms: float | None = None
    within: float | None = None
    options: Any = None            # the kind's own options (kinds/<kind>.py)
    load: LoadOptions | None = None
    server: ServerSide = field(default_factory=ServerSide)
    # Sent to many at once (udp): ("broadcast", network name) or ("multicast", group).
    fan_out: tuple[str, str] | None = None
    family: int | None = None      # 4 or 6; None: IPv4 where the target has it, else IPv6
    hint: str | None = None        # shown when the check fails: what to look at
    points: float = 1.0            # what passing it is worth in the score
    overlap: bool = False          # may run beside others though its server is the lab's program

    @property
    def protocol(self) -> str:
        return self.kind.name

    @property
    def transport(self) -> str:
        return self.kind.transport

    @property
    def expect(self) -> Expectation | None:
        """The expectation on the last answer (the only one, for single-step checks)."""
        return self.steps[-1].expect if self.steps else None


class CheckParser:
    """Reads one check at a time; knows the lab (hosts, folder) the check must fit."""

    def __init__(self, source: Source, topology: Topology, kinds: Mapping[str, CheckKind]):
        self.source = source
        self.topology = topology
        self.kinds = kinds
        self._memo: dict[Any, Any] = {}

    def memo(self, key: Any, compute: Any) -> Any:
        """`compute()` once per key for this parser: what every check naming the same
        thing asks again (a capture target, the lab's exchange checks by name)."""
        if key not in self._memo:
            self._memo[key] = compute()
        return self._memo[key]

    def parse_all(self, raw: Any) -> list[CheckSpec]:
        checks: list[CheckSpec] = []
        names: set[str] = set()
        for index, item in enumerate(self.source.sequence(raw, ("checks",))):
            for check in self.parse_many(item, ("checks", index)):
                if (unproven := evidence_problem(self.topology, check)) is not None:
                    key, why = unproven
                    raise self.source.error(("checks", index, *key), why)
                if check.name in names:
                    raise self.source.error(("checks", index, "name"), f"duplicate check name {quote(check.name)}")
                names.add(check.name)
                checks.append(check)
        self.link(checks, checks)
        return checks

    def link(self, checks: list[CheckSpec], known: list[CheckSpec], path: KeyPath = ("checks",),
             indexed: bool = True) -> None:
        """Let each kind resolve what its checks name among the lab's checks (a wire check's
        `during`)."""
        for index, check in enumerate(checks):
            check.kind.link(self, check, known, path + (index,) if indexed else path)

    def parse_many(self, raw: Any, path: KeyPath) -> list[CheckSpec]:
        """One check as written, and what it expands to (a `reach:` matrix: a ping per pair)."""
        check = self.parse(raw, path)
        return check.kind.expand(self, check, path) or [check]

    def parse(self, raw: Any, path: KeyPath) -> CheckSpec:
        source = self.source
        kinds = self.kinds
        named = [name for name in kinds if isinstance(raw, dict) and name in raw]
        if len(named) != 1:
            if not isinstance(raw, dict):
                raise source.error(path, f"expected a check mapping, got {describe(raw)}")
            raise source.error(path, "expected exactly one protocol key: " + ", ".join(kinds))
        kind = kinds[named[0]]
        spec = source.mapping(raw, path, [*kind.check_keys, kind.name],
                              required=[key for key in kind.required if key != "to"])
        client = self.host(spec["from"], path + ("from",)) if "from" in spec else ""
        target, port, fan_out = None, None, None
        fanned = self.fan_out(spec["to"], path + ("to",)) if "to" in spec and kind.fans_out else None
        if fanned:
            fan_out, port = fanned
        elif "to" in spec and not kind.takes_port:
            if isinstance(spec["to"], str) and ":" in spec["to"]:
                raise source.error(path + ("to",), f"a {kind.name} check reaches a host, not a port: "
                                   f"write to: {spec['to'].split(':')[0]}")
            target = self.host(spec["to"], path + ("to",),
                               hint=f"(a host: a {kind.name} check reaches a host, not a port)")
        elif "to" in spec:
            target, port = self.endpoint(spec["to"], path + ("to",))
        elif "to" in kind.required:
            raise source.error(path, "missing required key 'to' ("
                               + ("the host it reaches)" if not kind.takes_port else "host:port of the server)"))
        reached = target or (fan_out[1] if fan_out else None)   # a host, or what the check fans out to
        default_name = (f"{client} -> {reached}" + (f":{port}" if port is not None else "")
                        + f" {kind.name}" if reached else
                        f"{client} runs a command" if client else kind.name)
        name = source.name(spec.get("name", default_name), path + ("name",), hint="(a check name)")
        check = CheckSpec(name=name, source=client, target=target, port=port, kind=kind, fan_out=fan_out)
        if "family" in spec:
            check.family = self.family(spec["family"], path + ("family",), check)
        elif fan_out and fan_out[0] == "multicast":
            # A group is of one family, and its sender needs an address in it.
            check.family = self.family(6 if ":" in fan_out[1] else 4, path + ("to",), check)
        if "timeout" in spec:
            check.timeout = source.duration(spec["timeout"], path + ("timeout",))
        if "hint" in spec:
            check.hint = source.text(spec["hint"], path + ("hint",), hint="(what to look at when it fails)")
        if "points" in spec:
            check.points = self.points(spec["points"], path + ("points",))
        if "latency" in spec:
            check.latency_ms = source.duration(spec["latency"], path + ("latency",)) * 1000
        if "within" in spec:
            check.within = source.duration(spec["within"], path + ("within",))
        if "overlap" in spec:
            check.overlap = source.boolean(spec["overlap"], path + ("overlap",))
        kind.parse(self, spec[kind.name], path + (kind.name,), check)
        if "load" in spec:
            check.load = self.load_options(spec["load"], path + ("load",))
        if "server" in spec:
            check.server = self.server_side(spec["server"], path + ("server",), check)
        return check

    # -- readers a kind parses its block with ----------------------------------------------

    def host(self, raw: Any, path: KeyPath, hint: str = "(a host name)") -> str:
        name = self.source.text(raw, path, hint=hint)
        if name not in self.topology.hosts:
            raise self.source.error(path, f"unknown host {quote(name)}; the lab declares: "
                                    + ", ".join(self.topology.hosts))
        return name

    def points(self, raw: Any, path: KeyPath) -> float:
        if isinstance(raw, bool) or not isinstance(raw, (int, float)) or not 0 <= raw <= 1000 or raw != raw:
            raise self.source.error(path, f"expected points from 0 to 1000, got {describe(raw)}")
        return float(raw)

    def family(self, raw: Any, path: KeyPath, check: CheckSpec) -> int:
        """`family: 4` or `6`: the address family the check runs over, which both ends must have."""
        if raw not in (4, 6, "4", "6", "ipv4", "ipv6") or isinstance(raw, bool):
            raise self.source.error(path, f"expected 4 or 6 (IPv4 or IPv6), got {describe(raw)}")
        family = 6 if str(raw).endswith("6") else 4
        if check.fan_out is not None:
            kind, where = check.fan_out
            if kind == "broadcast" and family == 6:
                raise self.source.error(path, "IPv6 has no broadcast; send to a multicast group such as [ff15::1]:5000")
            if kind == "multicast" and (":" in where) != (family == 6):
                raise self.source.error(path, f"group {where} is not IPv{family}")
        for end in (check.source, check.target):
            if not end:
                continue
            host = self.topology.hosts[end]
            if not any(family in self.topology.networks[n].families for n in host.networks):
                raise self.source.error(path, f"'{end}' has no IPv{family} address: none of its networks "
                                        f"({', '.join(host.networks)}) has a {'subnet6' if family == 6 else 'subnet'}")
        return family

    def fan_out(self, raw: Any, path: KeyPath) -> tuple[tuple[str, str], int] | None:
        """`lan:5000` (a network: its broadcast address) or `239.1.2.3:5000` (a multicast
        group), or None: `to` names a host."""
        match = re.fullmatch(r"([a-z0-9][a-z0-9-]*|[0-9.]+|\[[0-9a-fA-F:.]*\]):([0-9]{1,9})", raw) \
            if isinstance(raw, str) else None
        if not match or match.group(1) in self.topology.hosts:
            return None
        where, port = match.group(1), int(match.group(2))
        if not 1 <= port <= 65535:
            raise self.source.error(path, f"expected a port from 1 to 65535, got {port}")
        if where in self.topology.networks:
            if self.topology.networks[where].subnet is None:
                raise self.source.error(path, f"network '{where}' is IPv6 only, and IPv6 has no broadcast; "
                                        "send to a multicast group such as [ff15::1]:5000")
            return ("broadcast", where), port
        if re.fullmatch(r"[0-9.]+|\[.*\]", where):
            try:
                group = ip_address(where.strip("[]"))
            except ValueError:
                group = None
            groups = MULTICAST6 if where.startswith("[") else MULTICAST
            if group is None or group not in groups:
                raise self.source.error(path, f"{where} is not a multicast group: groups are in {groups} "
                                        "(or name a host, or a network to broadcast on it)")
            return ("multicast", str(group)), port
        return None

    def endpoint(self, raw: Any, path: KeyPath) -> tuple[str, int]:
        match = re.fullmatch(r"([a-z0-9][a-z0-9-]*):([0-9]{1,9})", raw) if isinstance(raw, str) else None
        if not match:
            raise self.source.error(path, f"expected host:port such as web:8080, got {describe(raw)}")
        target = self.host(match.group(1), path)
        port = int(match.group(2))
        if not 1 <= port <= 65535:
            raise self.source.error(path, f"expected a port from 1 to 65535, got {port}")
        return target, port

    def payload(self, raw: Any, path: KeyPath) -> bytes:
        """Text, {hex: "0aff"}, {file: ./path/in/the/lab}, or {random: BYTES}: that many
        pseudo-random bytes, the same on every run. At most MAX_PAYLOAD bytes each, and
        MAX_LAB_PAYLOAD for the whole lab file."""
        data = self._payload(raw, path)
        if len(data) > MAX_PAYLOAD:
            raise self.source.error(path, f"a payload of {len(data)} bytes; at most {MAX_PAYLOAD}")
        self.source.payload_bytes += len(data)
        if self.source.payload_bytes > MAX_LAB_PAYLOAD:
            raise self.source.error(path, f"the lab's payloads add up to more than {MAX_LAB_PAYLOAD >> 20} MiB; "
                                    "send less, or fewer times")
        return data

    def _payload(self, raw: Any, path: KeyPath) -> bytes:
        source = self.source
        if isinstance(raw, (str, int, float)) and not isinstance(raw, bool):
            return str(raw).encode("utf-8", "surrogateescape")
        spec = source.mapping(raw, path, ["text", "hex", "file", "random"])
        if len(spec) != 1:
            raise source.error(path, "expected text, or exactly one of: text, hex, file, random")
        kind, value = next(iter(spec.items()))
        if kind == "random":
            size = source.integer(value, path + (kind,), 1, MAX_PAYLOAD, "a byte count")
            if source.payload_bytes + size > MAX_LAB_PAYLOAD:
                raise source.error(path + (kind,), f"the lab's payloads add up to more than "
                                   f"{MAX_LAB_PAYLOAD >> 20} MiB; send less, or fewer times")
            return random.Random(size).randbytes(size)
        if kind == "text":
            return source.text(value, path + (kind,), allow_nul=True).encode("utf-8", "surrogateescape")
        if kind == "hex":
            text = source.text(value, path + (kind,), hint="(hexadecimal bytes)")
            try:
                return bytes.fromhex(text)
            except ValueError:
                raise source.error(path + (kind,), f"expected hexadecimal bytes, got {describe(text)}") from None
        relative = checked_path(source, value, path + (kind,))
        folder = self.topology.folder
        try:
            file = (folder / relative).resolve()
            if folder not in file.parents or not file.is_file():
                raise source.error(path + (kind,), f"{quote(relative)} is not a file inside the lab folder")
            if file.stat().st_size > MAX_PAYLOAD:
                raise source.error(path + (kind,), f"{quote(relative)} holds more than {MAX_PAYLOAD} "
                                   "bytes, the most one payload may")
            with open(file, "rb") as handle:
                return handle.read(MAX_PAYLOAD + 1)
        except (OSError, ValueError, RuntimeError) as exc:     # RuntimeError: a symlink loop
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise source.error(path + (kind,), f"cannot read {quote(relative)}: {reason}") from None

    def expectation(self, raw: Any, path: KeyPath) -> Expectation:
        return parse_expectation(self.source, raw, path)

    def steps(self, body: dict[str, Any], path: KeyPath, check: CheckSpec) -> None:
        """`send` and `expect`, or `steps: [{send, expect}, ...]` on one connection."""
        source = self.source
        if "steps" in body:
            if "send" in body or "expect" in body:
                raise source.error(path + ("steps",), "give either steps, or send and expect")
            for index, item in enumerate(source.sequence(body["steps"], path + ("steps",))):
                step_path = path + ("steps", index)
                step = source.mapping(item, step_path, ["send", "expect"])
                check.steps.append(Step(
                    self.payload(step["send"], step_path + ("send",)) if "send" in step else b"",
                    self.expectation(step["expect"], step_path + ("expect",)) if "expect" in step else None))
            if not check.steps:
                raise source.error(path + ("steps",), "expected at least one step")
            return
        send = self.payload(body["send"], path + ("send",)) if "send" in body else b""
        expect = self.expectation(body["expect"], path + ("expect",)) if "expect" in body else None
        if send or expect:
            check.steps.append(Step(send, expect))

    def expected_error(self, body: dict[str, Any], path: KeyPath, check: CheckSpec) -> None:
        """`expect_error` (one of the kind's) and the `reason` it must give."""
        source = self.source
        if "expect_error" in body:
            allowed = check.kind.expected_errors
            error = body["expect_error"]
            if error not in allowed:
                raise source.error(path + ("expect_error",), f"expected one of {', '.join(allowed)}, "
                                   f"got {describe(error)}")
            check.expect_error = error
            if any(step.expect for step in check.steps) or "status" in body:
                raise source.error(path + ("expect_error",),
                                   "a check expects either an answer or an error, not both")
        if "reason" in body:
            if check.expect_error is None:
                raise source.error(path + ("reason",), "reason goes with expect_error")
            check.error_reason = self.expectation(body["reason"], path + ("reason",))

    def load_options(self, raw: Any, path: KeyPath) -> LoadOptions:
        source = self.source
        body = source.mapping(raw, path, LOAD_KEYS, required=["clients"])
        options = LoadOptions(clients=source.integer(body["clients"], path + ("clients",), 1, 256, "a client count"))
        if ("requests" in body) == ("duration" in body):
            raise source.error(path, "expected exactly one of requests: N or duration: T")
        if "requests" in body:
            options.requests = source.integer(body["requests"], path + ("requests",), 1, 1_000_000, "a request count")
        if "duration" in body:
            options.duration = source.duration(body["duration"], path + ("duration",))
        if "min_throughput" in body:
            value = body["min_throughput"]
            try:
                options.min_throughput = float(str(value).removesuffix("/s"))
            except (ValueError, OverflowError):
                options.min_throughput = math.nan
            if isinstance(value, bool) or not math.isfinite(options.min_throughput):
                raise source.error(path + ("min_throughput",), f"expected exchanges per second such as 200/s, got {describe(value)}")
        if "max_error_rate" in body:
            options.max_error_rate = source.share(body["max_error_rate"], path + ("max_error_rate",))
        if "max_p99" in body:
            options.max_p99_ms = source.duration(body["max_p99"], path + ("max_p99",)) * 1000
        return options

    def server_side(self, raw: Any, path: KeyPath, check: CheckSpec) -> ServerSide:
        source = self.source
        if isinstance(raw, bool):
            return ServerSide(mode="on" if raw else "off")
        body = source.mapping(raw, path, SERVER_KEYS)
        if check.target is None:
            raise source.error(path, "a server-side assertion needs the check's 'to'")
        side = ServerSide(mode="on")
        if "from" in body:
            side.peer = self.host(body["from"], path + ("from",))
        if "count" in body:
            side.count = source.integer(body["count"], path + ("count",), 0, 1_000_000, "a count")
        if "received" in body:
            side.received = self.expectation(body["received"], path + ("received",))
        if "log" in body:
            # Plain text means "a line of the output says this", not "the whole output is this".
            log = body["log"]
            side.log = (Expectation("contains", log) if isinstance(log, str)
                        else self.expectation(log, path + ("log",)))
        return side


def parse_checks(source: Source, raw: Any, topology: Topology,
                 kinds: Mapping[str, CheckKind]) -> list[CheckSpec]:
    return CheckParser(source, topology, kinds).parse_all(raw)
