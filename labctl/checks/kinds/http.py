"""http: a request (method, path, headers, body) and the response expected (status,
headers, body), over plain HTTP or HTTPS with the lab's CA."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ...model.yamlsource import describe
from ..exchange import ExchangeKind
from ..expectation import Expectation
from ..spec import Step
from .tls import TLS_ERRORS, TLS_KEYS, TlsOptions, parse_tls, tls_problems, tls_request


# What may not stand in a header value: a control character other than tab (a CR or LF
# would end the header and start another).
HEADER_BREAK = re.compile("[\x00-\x08\x0a-\x1f\x7f]")


@dataclass
class HttpOptions:
    method: str = "GET"
    path: str = "/"
    headers: dict[str, str] = field(default_factory=dict)
    status: int | None = 200
    response_headers: dict[str, Expectation] = field(default_factory=dict)
    https: bool = False
    tls: TlsOptions = field(default_factory=TlsOptions)


class HttpKind(ExchangeKind):
    name = "http"
    order = 40
    summary = "an HTTP request and the response expected (status, headers, body), over HTTP or HTTPS"
    keys = {
        "method": "the request's method, such as GET (the default) or POST",
        "path": "the request's path, such as /health (/ unless given)",
        "headers": "the request's headers, by name",
        "body": "the request's body: text, {hex: ...}, {file: ./path} or {random: BYTES}",
        "status": "the status the response must have (200 unless given)",
        "expect": "the response's body: exact text, or {contains|regex|json|length: ...}",
        "response_headers": "headers the response must have, by name: exact text, or {contains|regex: ...}",
        "expect_error": "the error the exchange must end in instead of a response",
        "reason": "with expect_error: what the error's detail must say, as text or {contains|regex: ...}",
        "tls": "true: HTTPS, with the lab's CA",
        **TLS_KEYS,
    }
    expected_errors = TLS_ERRORS

    def parse(self, parser, raw, path, check) -> None:
        source = parser.source
        body = source.mapping(raw, path, self.keys)
        parser.expected_error(body, path, check)
        options = HttpOptions(tls=parse_tls(parser, body, path))
        if "method" in body:
            options.method = source.text(body["method"], path + ("method",), r"^[A-Z]+$",
                                         "an HTTP method such as GET or POST")
        if "path" in body:
            options.path = source.text(body["path"], path + ("path",), r"/[^\x00-\x1f\x7f]*",
                                       "a path starting with /, without control characters")
        headers = source.named_mapping(body.get("headers"), path + ("headers",), "header", r"^[A-Za-z0-9-]+$")
        options.headers = {key: str(value) for key, value in headers.items()}
        for key, value in options.headers.items():
            if HEADER_BREAK.search(value):
                raise source.error(path + ("headers", key), "expected a header value on one line, without "
                                   f"control characters, got {describe(value)}")
        if "status" in body:
            options.status = source.integer(body["status"], path + ("status",), 100, 599, "an HTTP status")
        elif check.expect_error:
            options.status = None
        wanted = source.named_mapping(body.get("response_headers"), path + ("response_headers",),
                                      "header", r"^[A-Za-z0-9-]+$")
        options.response_headers = {key.lower(): parser.expectation(value, path + ("response_headers", key))
                                    for key, value in wanted.items()}
        if "tls" in body:
            options.https = source.boolean(body["tls"], path + ("tls",))
        send = parser.payload(body["body"], path + ("body",)) if "body" in body else b""
        expect = parser.expectation(body["expect"], path + ("expect",)) if "expect" in body else None
        check.steps = [Step(send, expect)]
        check.options = options

    def probe_request(self, topology, check):
        options: HttpOptions = check.options
        return {"tls": tls_request(options.tls, check.target),
                "http": {"method": options.method, "path": options.path, "headers": options.headers,
                         "https": options.https}}

    def step_name(self, check, position) -> str:
        return "body "

    def answer_problems(self, check, observation):
        options: HttpOptions = check.options
        problems = []
        status = observation.get("status")
        if options.status is not None and status != options.status:
            problems.append(f"expected status {options.status}, got {status}")
        headers = observation.get("headers", {})
        for name, expectation in options.response_headers.items():
            if name not in headers:
                problems.append(f"no response header {name}")
            elif mismatch := expectation.mismatch(headers[name]):
                problems.append(f"header {name} {mismatch}")
        return problems + super().answer_problems(check, observation)

    def extra_problems(self, check, observation):
        return tls_problems(check.options.tls, observation["tls"]) if "tls" in observation else []


KIND = HttpKind()
