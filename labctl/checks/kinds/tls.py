"""tls: a stream exchange inside TLS with the lab's CA (or the untrusted one), with the
negotiated version, the certificate's subject and SANs, and mutual TLS."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ...model.yamlsource import describe
from ..exchange import ExchangeKind
from ..expectation import Expectation
from .tcp import STREAM_KEYS

TLS_KEYS = {
    "ca": "the CA the client trusts: lab (the default) or untrusted",
    "server_name": "the name the client asks for and verifies (the target host's own unless given)",
    "client_cert": "true: the client presents its host's lab certificate (mutual TLS)",
    "min_version": "the oldest TLS version the client takes: 1.2 or 1.3",
    "subject": "the server certificate's subject: exact text, or {contains|regex: ...}",
    "san": "names the server certificate's SAN must hold, such as [DNS:web, IP:10.10.2.10]",
}
TLS_VERSIONS = {"1.2": "TLSv1.2", "1.3": "TLSv1.3"}
TLS_ERRORS = ("refused", "timeout", "reset", "certificate", "rejected")


@dataclass
class TlsOptions:
    ca: str = "lab"
    server_name: str | None = None
    client_cert: bool = False
    min_version: str | None = None          # TLSv1.2 | TLSv1.3
    subject: Expectation | None = None
    san: list[str] = field(default_factory=list)


def parse_tls(parser, body: dict[str, Any], path) -> TlsOptions:
    source = parser.source
    tls = TlsOptions()
    if "ca" in body:
        if body["ca"] not in ("lab", "untrusted"):
            raise source.error(path + ("ca",), f"expected lab or untrusted, got {describe(body['ca'])}")
        tls.ca = body["ca"]
    if "server_name" in body:
        tls.server_name = source.text(body["server_name"], path + ("server_name",), hint="(a server name)",
                                      single_line=True)
    if "client_cert" in body:
        tls.client_cert = source.boolean(body["client_cert"], path + ("client_cert",))
    if "min_version" in body:
        version = str(body["min_version"])
        if version not in TLS_VERSIONS:
            raise source.error(path + ("min_version",), f"expected 1.2 or 1.3, got {describe(body['min_version'])}")
        tls.min_version = TLS_VERSIONS[version]
    if "subject" in body:
        tls.subject = parser.expectation(body["subject"], path + ("subject",))
    if "san" in body:
        names = source.sequence(body["san"], path + ("san",))
        tls.san = [source.text(item, path + ("san", i), r"^(DNS|IP):\S+$",
                               "a name such as DNS:web or IP:10.0.0.2") for i, item in enumerate(names)]
    return tls


def tls_request(tls: TlsOptions, target: str | None) -> dict[str, Any]:
    """What the probe needs to connect: the CA to trust, the name to verify (the target
    host's own, by default), and whether to present the host's certificate."""
    return {"ca": tls.ca, "server_name": tls.server_name or target, "client_cert": tls.client_cert}


def tls_problems(tls: TlsOptions, facts: dict[str, Any]) -> list[str]:
    problems = []
    order = ["TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3"]
    version = facts.get("version")
    if tls.min_version and (version not in order or order.index(version) < order.index(tls.min_version)):
        problems.append(f"negotiated {version}, below {tls.min_version}")
    if tls.subject and (mismatch := tls.subject.mismatch(facts.get("subject", ""))):
        problems.append(f"certificate subject {mismatch}")
    missing = [name for name in tls.san if name not in facts.get("san", [])]
    if missing:
        problems.append(f"certificate SAN lacks {', '.join(missing)} (has {', '.join(facts.get('san', []))})")
    return problems


class TlsKind(ExchangeKind):
    name = "tls"
    order = 30
    summary = "a stream exchange inside TLS, with the certificate, version and mutual TLS checked"
    keys = {**STREAM_KEYS, **TLS_KEYS}
    expected_errors = TLS_ERRORS

    def options(self, parser, body, path, check) -> TlsOptions:
        return parse_tls(parser, body, path)

    def probe_request(self, topology, check):
        return {"tls": tls_request(check.options, check.target)}

    def extra_problems(self, check, observation):
        return tls_problems(check.options, observation["tls"]) if "tls" in observation else []


KIND = TlsKind()
