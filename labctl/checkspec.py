"""The check vocabulary: what lab.yaml's `checks:` may say, parsed into `CheckSpec`s.

A check reads as a sentence: from alice, to web:8080, over http, GET /health, expect 200.
Expectations are judged on labctl's side (checks.py); the probe in the container only
reports what it observed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from .topology import Topology
from .yamlsource import KeyPath, Source, describe

PROTOCOLS = ("tcp", "udp", "tls", "http")
# Errors a check may expect instead of an answer.
EXPECTED_ERRORS = {
    "tcp": ("refused", "timeout", "reset"),
    "udp": ("refused", "timeout"),
    "tls": ("refused", "timeout", "reset", "certificate"),
    "http": ("refused", "timeout", "reset"),
}
MATCH_KINDS = ("exact", "contains", "regex")
DEFAULT_TIMEOUT = 3.0


@dataclass(frozen=True)
class Expectation:
    """How received text must look: exactly, containing, or matching a regex."""
    kind: str
    value: str

    def mismatch(self, received: str) -> str | None:
        """None when `received` satisfies this expectation, else why not."""
        if self.kind == "exact" and received == self.value:
            return None
        if self.kind == "contains" and self.value in received:
            return None
        if self.kind == "regex" and re.search(self.value, received, re.DOTALL):
            return None
        wanted = {"exact": "exactly", "contains": "containing", "regex": "matching"}[self.kind]
        return f"expected {wanted} {self.value!r}, got {_preview(received)!r}"


def _preview(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


@dataclass
class CheckSpec:
    name: str
    source: str                    # host the client runs on
    target: str                    # host the server runs on
    port: int
    protocol: str                  # tcp | udp | tls | http
    send: str = ""
    expect: Expectation | None = None
    expect_error: str | None = None
    timeout: float = DEFAULT_TIMEOUT
    # TLS: which CA the client trusts ('lab' or 'untrusted') and the name it asks for.
    ca: str = "lab"
    server_name: str | None = None
    # HTTP
    method: str = "GET"
    path: str = "/"
    headers: dict[str, str] = field(default_factory=dict)
    status: int | None = None
    body: Expectation | None = None
    https: bool = False

    @property
    def transport(self) -> str:
        return "udp" if self.protocol == "udp" else "tcp"


CHECK_KEYS = ["name", "from", "to", "timeout", *PROTOCOLS]
EXCHANGE_KEYS = {
    "tcp": ["send", "expect", "expect_error"],
    "udp": ["send", "expect", "expect_error"],
    "tls": ["send", "expect", "expect_error", "ca", "server_name"],
    "http": ["method", "path", "headers", "body", "status", "expect", "expect_error", "tls",
             "ca", "server_name"],
}


def parse_checks(source: Source, raw: Any, topology: Topology) -> list[CheckSpec]:
    checks: list[CheckSpec] = []
    names: set[str] = set()
    for index, item in enumerate(source.sequence(raw, ("checks",))):
        check = parse_check(source, item, ("checks", index), topology)
        if check.name in names:
            raise source.error(("checks", index, "name"), f"duplicate check name '{check.name}'")
        names.add(check.name)
        checks.append(check)
    return checks


def parse_check(source: Source, raw: Any, path: KeyPath, topology: Topology) -> CheckSpec:
    spec = source.mapping(raw, path, CHECK_KEYS, required=["from", "to"])
    protocols = [key for key in PROTOCOLS if key in spec]
    if len(protocols) != 1:
        raise source.error(path, "expected exactly one protocol key: " + ", ".join(PROTOCOLS))
    protocol = protocols[0]
    client = source.text(spec["from"], path + ("from",), hint="(a host name)")
    if client not in topology.hosts:
        raise source.error(path + ("from",), f"unknown host '{client}'; the lab declares: "
                           + ", ".join(topology.hosts))
    target_text = spec["to"]
    match = re.fullmatch(r"([a-z0-9][a-z0-9-]*):(\d+)", str(target_text)) if isinstance(target_text, str) else None
    if not match:
        raise source.error(path + ("to",), f"expected host:port such as web:8080, got {describe(target_text)}")
    target, port_text = match.groups()
    if target not in topology.hosts:
        raise source.error(path + ("to",), f"unknown host '{target}'; the lab declares: "
                           + ", ".join(topology.hosts))
    port = int(port_text)
    if not 1 <= port <= 65535:
        raise source.error(path + ("to",), f"expected a port from 1 to 65535, got {port}")
    name = source.text(spec.get("name", f"{client} -> {target}:{port} {protocol}"), path + ("name",))
    check = CheckSpec(name=name, source=client, target=target, port=port, protocol=protocol)
    if "timeout" in spec:
        check.timeout = source.duration(spec["timeout"], path + ("timeout",))
    _parse_exchange(source, spec[protocol], path + (protocol,), check)
    return check


def _parse_exchange(source: Source, raw: Any, path: KeyPath, check: CheckSpec) -> None:
    body = source.mapping(raw, path, EXCHANGE_KEYS[check.protocol])
    if "send" in body:
        check.send = _text(source, body["send"], path + ("send",))
    if "expect" in body:
        check.expect = parse_expectation(source, body["expect"], path + ("expect",))
    if "expect_error" in body:
        allowed = EXPECTED_ERRORS[check.protocol]
        error = body["expect_error"]
        if error not in allowed:
            raise source.error(path + ("expect_error",), f"expected one of {', '.join(allowed)}, "
                               f"got {describe(error)}")
        check.expect_error = error
        if check.expect is not None:
            raise source.error(path + ("expect_error",), "a check expects either an answer or an error, not both")
    if "ca" in body:
        ca = body["ca"]
        if ca not in ("lab", "untrusted"):
            raise source.error(path + ("ca",), f"expected lab or untrusted, got {describe(ca)}")
        check.ca = ca
    if "server_name" in body:
        check.server_name = source.text(body["server_name"], path + ("server_name",))
    if check.protocol == "http":
        _parse_http(source, body, path, check)
    elif check.protocol == "udp" and not check.send:
        raise source.error(path, "a UDP check needs something to send")


def _parse_http(source: Source, body: dict[str, Any], path: KeyPath, check: CheckSpec) -> None:
    if "method" in body:
        check.method = source.text(body["method"], path + ("method",), r"^[A-Z]+$",
                                    "an HTTP method such as GET or POST").upper()
    if "path" in body:
        check.path = source.text(body["path"], path + ("path",), r"^/", "a path starting with /")
    headers = source.named_mapping(body.get("headers"), path + ("headers",), "header",
                                   r"^[A-Za-z0-9-]+$")
    check.headers = {key: str(value) for key, value in headers.items()}
    if "status" in body:
        check.status = source.integer(body["status"], path + ("status",), 100, 599, "an HTTP status")
    if "expect" in body:
        # For HTTP, `expect` is the body expectation; `body` is what to send.
        check.body, check.expect = check.expect, None
    if "body" in body:
        check.send = _text(source, body["body"], path + ("body",))
    if "tls" in body:
        check.https = source.boolean(body["tls"], path + ("tls",))
    if check.status is None and check.body is None and check.expect_error is None:
        check.status = 200


def parse_expectation(source: Source, raw: Any, path: KeyPath) -> Expectation:
    if isinstance(raw, (str, int, float)) and not isinstance(raw, bool):
        return Expectation("exact", str(raw))
    spec = source.mapping(raw, path, MATCH_KINDS)
    if len(spec) != 1:
        raise source.error(path, "expected text, or exactly one of: " + ", ".join(MATCH_KINDS))
    kind, value = next(iter(spec.items()))
    text = _text(source, value, path + (kind,))
    if kind == "regex":
        try:
            re.compile(text)
        except re.error as exc:
            raise source.error(path + (kind,), f"bad regular expression: {exc}") from None
    return Expectation(kind, text)


def _text(source: Source, value: Any, path: KeyPath) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise source.error(path, f"expected text, got {describe(value)}")
    return str(value)
