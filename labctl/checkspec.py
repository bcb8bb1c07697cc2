"""The check vocabulary: what lab.yaml's `checks:` may say, parsed into `CheckSpec`s.

A check reads as the sentence a person would say: from alice, to web:8080, over http,
GET /health, expect 200 within 10s, and the server saw it from alice.
Expectations are judged on labctl's side (checks.py); the probe in the container only
reports what it observed.
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .topology import Topology
from .yamlsource import KeyPath, Source, describe

PROTOCOLS = ("tcp", "udp", "tls", "http", "run")
# Errors a check may expect instead of an answer.
EXPECTED_ERRORS = {
    "tcp": ("refused", "timeout", "reset"),
    "udp": ("refused", "timeout"),
    "tls": ("refused", "timeout", "reset", "certificate", "rejected"),
    "http": ("refused", "timeout", "reset", "certificate", "rejected"),
}
MATCH_KINDS = ("exact", "contains", "regex", "json", "length")
TLS_VERSIONS = {"1.2": "TLSv1.2", "1.3": "TLSv1.3"}
DEFAULT_TIMEOUT = 3.0


@dataclass(frozen=True)
class Expectation:
    """How received data must look: exactly, containing, matching a regex, holding a JSON
    subset, or being N bytes long."""
    kind: str
    value: Any

    def mismatch(self, received: bytes | str) -> str | None:
        """None when `received` satisfies this expectation, else why not."""
        data = received.encode() if isinstance(received, str) else received
        text = data.decode("utf-8", "replace")
        if self.kind == "length":
            return None if len(data) == self.value else f"expected {self.value} bytes, got {len(data)}"
        if self.kind == "json":
            try:
                actual = json.loads(text)
            except ValueError:
                return f"expected JSON containing {json.dumps(self.value)}, got {_preview(text)!r}"
            problem = json_subset_mismatch(self.value, actual, "$")
            return None if problem is None else f"JSON {problem}"
        if self.kind == "exact" and text == self.value:
            return None
        if self.kind == "contains" and self.value in text:
            return None
        if self.kind == "regex" and re.search(self.value, text, re.DOTALL):
            return None
        wanted = {"exact": "exactly", "contains": "containing", "regex": "matching"}[self.kind]
        return f"expected {wanted} {self.value!r}, got {_preview(text)!r}"

    def read_rule(self) -> dict[str, Any]:
        """When the probe may stop reading: the reply can be judged from then on."""
        if self.kind == "exact":
            return {"mode": "bytes", "n": len(self.value.encode())}
        if self.kind == "length":
            return {"mode": "bytes", "n": self.value}
        if self.kind == "contains":
            return {"mode": "regex", "pattern": re.escape(self.value)}
        if self.kind == "regex":
            return {"mode": "regex", "pattern": self.value}
        return {"mode": "json"}

    def describe(self) -> str:
        if self.kind in ("json", "length"):
            return f"{self.kind} {json.dumps(self.value)}"
        return f"{self.kind} {self.value!r}"


def json_subset_mismatch(expected: Any, actual: Any, where: str) -> str | None:
    """None when every key and value in `expected` is also in `actual`."""
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return f"at {where}: expected an object, got {json.dumps(actual)[:40]}"
        for key, value in expected.items():
            if key not in actual:
                return f"at {where}: no key {key!r}"
            problem = json_subset_mismatch(value, actual[key], f"{where}.{key}")
            if problem:
                return problem
        return None
    if isinstance(expected, list):
        if not isinstance(actual, list):
            return f"at {where}: expected a list, got {json.dumps(actual)[:40]}"
        for index, item in enumerate(expected):
            if not any(json_subset_mismatch(item, candidate, where) is None for candidate in actual):
                return f"at {where}[{index}]: no element matches {json.dumps(item)[:40]}"
        return None
    if expected != actual:
        return f"at {where}: expected {json.dumps(expected)}, got {json.dumps(actual)[:40]}"
    return None


def _preview(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


@dataclass
class Step:
    """One request and the answer expected to it, on a connection shared by all steps."""
    send: bytes = b""
    expect: Expectation | None = None


@dataclass
class TlsOptions:
    ca: str = "lab"
    server_name: str | None = None
    client_cert: bool = False
    min_version: str | None = None          # TLSv1.2 | TLSv1.3
    subject: Expectation | None = None
    san: list[str] = field(default_factory=list)


@dataclass
class HttpOptions:
    method: str = "GET"
    path: str = "/"
    headers: dict[str, str] = field(default_factory=dict)
    status: int | None = 200
    response_headers: dict[str, Expectation] = field(default_factory=dict)
    https: bool = False


@dataclass
class LoadOptions:
    clients: int = 1
    requests: int | None = None
    duration: float | None = None
    min_throughput: float | None = None     # exchanges per second
    max_error_rate: float | None = None     # 0..1
    max_p99_ms: float | None = None


@dataclass
class RunOptions:
    command: list[str]
    exit_code: int = 0
    stdout: Expectation | None = None
    stderr: Expectation | None = None


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
    source: str                    # host the client runs on
    target: str | None             # host the server runs on (None: a run check with no server)
    port: int | None
    protocol: str                  # tcp | udp | tls | http | run
    steps: list[Step] = field(default_factory=list)
    expect_error: str | None = None
    error_reason: Expectation | None = None
    timeout: float = DEFAULT_TIMEOUT
    latency_ms: float | None = None
    within: float | None = None
    udp_count: int = 1
    udp_min_share: float = 1.0
    udp_max_share: float = 1.0     # below 1: the check asserts that datagrams were lost
    tls: TlsOptions = field(default_factory=TlsOptions)
    http: HttpOptions | None = None
    load: LoadOptions | None = None
    run: RunOptions | None = None
    server: ServerSide = field(default_factory=ServerSide)
    wire: Any = None               # capture.WireSpec for a wire check (protocol "wire")

    @property
    def transport(self) -> str:
        return "udp" if self.protocol == "udp" else "tcp"

    @property
    def expect(self) -> Expectation | None:
        """The expectation on the last answer (the only one, for single-step checks)."""
        return self.steps[-1].expect if self.steps else None


CHECK_KEYS = ["name", "from", "to", "timeout", "latency", "within", "load", "server", *PROTOCOLS]
WIRE_KEYS = ["name", "wire"]
STREAM_KEYS = ["send", "expect", "steps", "expect_error", "reason"]
EXCHANGE_KEYS = {
    "tcp": STREAM_KEYS,
    "udp": ["send", "expect", "count", "min_share", "max_share", "expect_error", "reason"],
    "tls": [*STREAM_KEYS, "ca", "server_name", "client_cert", "min_version", "subject", "san"],
    "http": ["method", "path", "headers", "body", "status", "expect", "response_headers",
             "expect_error", "reason", "tls", "ca", "server_name", "client_cert", "min_version",
             "subject", "san"],
    "run": ["command", "exit_code", "stdout", "stderr"],
}


class CheckParser:
    """Reads one check at a time; knows the lab (hosts, folder) the check must fit."""

    def __init__(self, source: Source, topology: Topology):
        self.source = source
        self.topology = topology

    def parse_all(self, raw: Any) -> list[CheckSpec]:
        checks: list[CheckSpec] = []
        names: set[str] = set()
        for index, item in enumerate(self.source.sequence(raw, ("checks",))):
            check = self.parse(item, ("checks", index))
            if check.name in names:
                raise self.source.error(("checks", index, "name"), f"duplicate check name '{check.name}'")
            names.add(check.name)
            checks.append(check)
        self.check_wire_references(checks)
        return checks

    def check_wire_references(self, checks: list[CheckSpec], known: list[CheckSpec] | None = None,
                              path: KeyPath = ("checks",)) -> None:
        """A wire check's `during` names exchange checks of the lab."""
        exchanges = {check.name for check in (known if known is not None else checks) if not check.wire}
        for index, check in enumerate(checks):
            for position, name in enumerate(check.wire.during if check.wire else []):
                if name not in exchanges:
                    raise self.source.error(path + (index, "wire", "during", position),
                                            f"no exchange check named '{name}' to run during the capture")

    def parse(self, raw: Any, path: KeyPath) -> CheckSpec:
        source = self.source
        if isinstance(raw, dict) and "wire" in raw:
            return self.wire_check(raw, path)
        spec = source.mapping(raw, path, CHECK_KEYS, required=["from"])
        protocols = [key for key in PROTOCOLS if key in spec]
        if len(protocols) != 1:
            raise source.error(path, "expected exactly one protocol key: " + ", ".join(PROTOCOLS))
        protocol = protocols[0]
        client = self.host(spec["from"], path + ("from",))
        target, port = None, None
        if "to" in spec:
            target, port = self.endpoint(spec["to"], path + ("to",))
        elif protocol != "run":
            raise source.error(path, "missing required key 'to' (host:port of the server)")
        default_name = f"{client} -> {target}:{port} {protocol}" if target else f"{client} runs a command"
        name = source.text(spec.get("name", default_name), path + ("name",))
        check = CheckSpec(name=name, source=client, target=target, port=port, protocol=protocol)
        if "timeout" in spec:
            check.timeout = source.duration(spec["timeout"], path + ("timeout",))
        if "latency" in spec:
            check.latency_ms = source.duration(spec["latency"], path + ("latency",)) * 1000
        if "within" in spec:
            check.within = source.duration(spec["within"], path + ("within",))
        body_path = path + (protocol,)
        if protocol == "run":
            check.run = self.run_options(spec["run"], body_path)
        else:
            self.exchange(spec[protocol], body_path, check)
        if "load" in spec:
            if protocol == "run":
                raise source.error(path + ("load",), "load applies to tcp, udp, tls and http checks")
            check.load = self.load_options(spec["load"], path + ("load",))
        if "server" in spec:
            check.server = self.server_side(spec["server"], path + ("server",), check)
        return check

    def wire_check(self, raw: dict[str, Any], path: KeyPath) -> CheckSpec:
        from .capture import capture_points, parse_wire
        from .errors import LabError
        spec = self.source.mapping(raw, path, WIRE_KEYS, required=["name", "wire"])
        wire = parse_wire(spec["wire"], path + ("wire",), self.source, self.host, self.endpoint)
        try:
            capture_points(self.topology, wire.target)
        except LabError as exc:
            raise self.source.error(path + ("wire", "at"), str(exc)) from None
        return CheckSpec(name=self.source.text(spec["name"], path + ("name",)), source="",
                         target=wire.target, port=None, protocol="wire", wire=wire)

    # -- pieces ---------------------------------------------------------------------------

    def host(self, raw: Any, path: KeyPath) -> str:
        name = self.source.text(raw, path, hint="(a host name)")
        if name not in self.topology.hosts:
            raise self.source.error(path, f"unknown host '{name}'; the lab declares: "
                                    + ", ".join(self.topology.hosts))
        return name

    def endpoint(self, raw: Any, path: KeyPath) -> tuple[str, int]:
        match = re.fullmatch(r"([a-z0-9][a-z0-9-]*):(\d+)", raw) if isinstance(raw, str) else None
        if not match:
            raise self.source.error(path, f"expected host:port such as web:8080, got {describe(raw)}")
        target = self.host(match.group(1), path)
        port = int(match.group(2))
        if not 1 <= port <= 65535:
            raise self.source.error(path, f"expected a port from 1 to 65535, got {port}")
        return target, port

    def payload(self, raw: Any, path: KeyPath) -> bytes:
        """Text, {hex: "0aff"}, {file: ./path/in/the/lab}, or {random: BYTES}: that many
        pseudo-random bytes, the same on every run."""
        source = self.source
        if isinstance(raw, (str, int, float)) and not isinstance(raw, bool):
            return str(raw).encode()
        spec = source.mapping(raw, path, ["text", "hex", "file", "random"])
        if len(spec) != 1:
            raise source.error(path, "expected text, or exactly one of: text, hex, file, random")
        kind, value = next(iter(spec.items()))
        if kind == "random":
            size = source.integer(value, path + (kind,), 1, 64 << 20, "a byte count")
            return random.Random(size).randbytes(size)
        if kind == "text":
            return source.text(value, path + (kind,)).encode()
        if kind == "hex":
            text = source.text(value, path + (kind,), hint="(hexadecimal bytes)")
            try:
                return bytes.fromhex(text)
            except ValueError:
                raise source.error(path + (kind,), f"expected hexadecimal bytes, got {describe(text)}") from None
        relative = source.text(value, path + (kind,), hint="(a path inside the lab folder)")
        folder = self.topology.folder
        file = (folder / relative).resolve()
        if folder not in file.parents or not file.is_file():
            raise source.error(path + (kind,), f"'{relative}' is not a file inside the lab folder")
        return Path(file).read_bytes()

    def expectation(self, raw: Any, path: KeyPath) -> Expectation:
        return parse_expectation(self.source, raw, path)

    def exchange(self, raw: Any, path: KeyPath, check: CheckSpec) -> None:
        source = self.source
        body = source.mapping(raw, path, EXCHANGE_KEYS[check.protocol])
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
        elif check.protocol != "http":
            send = self.payload(body["send"], path + ("send",)) if "send" in body else b""
            expect = self.expectation(body["expect"], path + ("expect",)) if "expect" in body else None
            if send or expect:
                check.steps.append(Step(send, expect))
        if "expect_error" in body:
            allowed = EXPECTED_ERRORS[check.protocol]
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
        if check.protocol in ("tls", "http"):
            self.tls_options(body, path, check.tls)
        if check.protocol == "udp":
            if not check.steps or not check.steps[0].send:
                raise source.error(path, "a UDP check needs something to send")
            if "count" in body:
                check.udp_count = source.integer(body["count"], path + ("count",), 1, 100000, "a count")
            if "min_share" in body:
                check.udp_min_share = source.share(body["min_share"], path + ("min_share",))
            if "max_share" in body:
                check.udp_max_share = source.share(body["max_share"], path + ("max_share",))
                if "min_share" not in body:
                    check.udp_min_share = 0.0
                if check.udp_max_share < check.udp_min_share:
                    raise source.error(path + ("max_share",), "max_share is below min_share")
        if check.protocol == "http":
            check.http = self.http_options(body, path, check)

    def tls_options(self, body: dict[str, Any], path: KeyPath, tls: TlsOptions) -> None:
        source = self.source
        if "ca" in body:
            if body["ca"] not in ("lab", "untrusted"):
                raise source.error(path + ("ca",), f"expected lab or untrusted, got {describe(body['ca'])}")
            tls.ca = body["ca"]
        if "server_name" in body:
            tls.server_name = source.text(body["server_name"], path + ("server_name",))
        if "client_cert" in body:
            tls.client_cert = source.boolean(body["client_cert"], path + ("client_cert",))
        if "min_version" in body:
            version = str(body["min_version"])
            if version not in TLS_VERSIONS:
                raise source.error(path + ("min_version",), f"expected 1.2 or 1.3, got {describe(body['min_version'])}")
            tls.min_version = TLS_VERSIONS[version]
        if "subject" in body:
            tls.subject = self.expectation(body["subject"], path + ("subject",))
        if "san" in body:
            names = source.sequence(body["san"], path + ("san",))
            tls.san = [source.text(item, path + ("san", i), r"^(DNS|IP):\S+$",
                                   "a name such as DNS:web or IP:10.0.0.2") for i, item in enumerate(names)]

    def http_options(self, body: dict[str, Any], path: KeyPath, check: CheckSpec) -> HttpOptions:
        source = self.source
        options = HttpOptions()
        if "method" in body:
            options.method = source.text(body["method"], path + ("method",), r"^[A-Z]+$",
                                         "an HTTP method such as GET or POST")
        if "path" in body:
            options.path = source.text(body["path"], path + ("path",), r"^/", "a path starting with /")
        headers = source.named_mapping(body.get("headers"), path + ("headers",), "header", r"^[A-Za-z0-9-]+$")
        options.headers = {key: str(value) for key, value in headers.items()}
        if "status" in body:
            options.status = source.integer(body["status"], path + ("status",), 100, 599, "an HTTP status")
        elif check.expect_error:
            options.status = None
        wanted = source.named_mapping(body.get("response_headers"), path + ("response_headers",),
                                      "header", r"^[A-Za-z0-9-]+$")
        options.response_headers = {key.lower(): self.expectation(value, path + ("response_headers", key))
                                    for key, value in wanted.items()}
        if "tls" in body:
            options.https = source.boolean(body["tls"], path + ("tls",))
        send = self.payload(body["body"], path + ("body",)) if "body" in body else b""
        expect = self.expectation(body["expect"], path + ("expect",)) if "expect" in body else None
        check.steps = [Step(send, expect)]
        return options

    def run_options(self, raw: Any, path: KeyPath) -> RunOptions:
        source = self.source
        if isinstance(raw, (str, list)):
            raw = {"command": raw}
        body = source.mapping(raw, path, EXCHANGE_KEYS["run"], required=["command"])
        command = body["command"]
        if isinstance(command, str):
            argv = ["sh", "-c", command]
        elif isinstance(command, list) and command and all(isinstance(p, (str, int)) for p in command):
            argv = [str(part) for part in command]
        else:
            raise source.error(path + ("command",), f"expected a command as text or a list, got {describe(command)}")
        options = RunOptions(argv)
        if "exit_code" in body:
            options.exit_code = source.integer(body["exit_code"], path + ("exit_code",), 0, 255, "an exit code")
        if "stdout" in body:
            options.stdout = self.expectation(body["stdout"], path + ("stdout",))
        if "stderr" in body:
            options.stderr = self.expectation(body["stderr"], path + ("stderr",))
        return options

    def load_options(self, raw: Any, path: KeyPath) -> LoadOptions:
        source = self.source
        body = source.mapping(raw, path, ["clients", "requests", "duration", "min_throughput",
                                          "max_error_rate", "max_p99"], required=["clients"])
        options = LoadOptions(clients=source.integer(body["clients"], path + ("clients",), 1, 256, "a client count"))
        if ("requests" in body) == ("duration" in body):
            raise source.error(path, "expected exactly one of requests: N or duration: T")
        if "requests" in body:
            options.requests = source.integer(body["requests"], path + ("requests",), 1, 1_000_000, "a request count")
        if "duration" in body:
            options.duration = source.duration(body["duration"], path + ("duration",))
        if "min_throughput" in body:
            value = body["min_throughput"]
            text = str(value).removesuffix("/s")
            try:
                options.min_throughput = float(text)
            except ValueError:
                raise source.error(path + ("min_throughput",), f"expected exchanges per second such as 200/s, got {describe(value)}") from None
        if "max_error_rate" in body:
            options.max_error_rate = source.share(body["max_error_rate"], path + ("max_error_rate",))
        if "max_p99" in body:
            options.max_p99_ms = source.duration(body["max_p99"], path + ("max_p99",)) * 1000
        return options

    def server_side(self, raw: Any, path: KeyPath, check: CheckSpec) -> ServerSide:
        source = self.source
        if isinstance(raw, bool):
            return ServerSide(mode="on" if raw else "off")
        body = source.mapping(raw, path, ["from", "count", "received", "log"])
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

def parse_checks(source: Source, raw: Any, topology: Topology) -> list[CheckSpec]:
    return CheckParser(source, topology).parse_all(raw)


def parse_expectation(source: Source, raw: Any, path: KeyPath) -> Expectation:
    if isinstance(raw, (str, int, float)) and not isinstance(raw, bool):
        return Expectation("exact", str(raw))
    spec = source.mapping(raw, path, MATCH_KINDS)
    if len(spec) != 1:
        raise source.error(path, "expected text, or exactly one of: " + ", ".join(MATCH_KINDS))
    kind, value = next(iter(spec.items()))
    if kind == "json":
        return Expectation("json", value)
    if kind == "length":
        return Expectation("length", source.integer(value, path + (kind,), 0, 1 << 30, "a byte count"))
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise source.error(path + (kind,), f"expected text, got {describe(value)}")
    text = str(value)
    if kind == "regex":
        try:
            re.compile(text)
        except re.error as exc:
            raise source.error(path + (kind,), f"bad regular expression: {exc}") from None
    return Expectation(kind, text)
