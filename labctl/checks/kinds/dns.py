"""dns: ask a DNS server (the lab's built-in one, or a student's own) for a name and type.

`{from: alice, to: ns:53, dns: {name: www.campus.lab, type: A, expect: [web.campus.lab, 10.10.2.3]}}`
reads "asked by alice, ns answers www.campus.lab's A with web.campus.lab and 10.10.2.3". It
expects answers (every value listed is among them), an rcode (`NOERROR` unless told, or
`NXDOMAIN`, `REFUSED`, ...), or the error `timeout` (no answer) or `refused` (no server on
the port). `tcp: true` asks over TCP. Against the built-in dns service the server's side is
its transcript: the query, from alice's own address, with the answer it gave.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from ipaddress import ip_address

from ...model.yamlsource import describe
from ..exchange import ExchangeKind

QUERY_TYPES = ("A", "AAAA", "PTR", "CNAME", "TXT", "MX", "SRV", "NS", "SOA", "ANY")
RCODES = ("NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED")


@dataclass
class DnsOptions:
    name: str
    qtype: str = "A"
    expect: list[str] = field(default_factory=list)
    rcode: str = "NOERROR"
    tcp: bool = False


class DnsKind(ExchangeKind):
    name = "dns"
    order = 24
    summary = "ask a DNS server for a name and type, and expect the answers, an rcode or an error"
    keys = {
        "name": "the name asked for, such as www.campus.lab",
        "type": "the query type: A (the default), AAAA, PTR, CNAME, TXT, MX, SRV, NS, SOA or ANY",
        "expect": "values that must be among the answers: a name or an address, or a list of them",
        "expect_rcode": "the answer's rcode: NOERROR (the default), NXDOMAIN, REFUSED, SERVFAIL...",
        "tcp": "true: ask over TCP",
        "expect_error": "timeout (no answer) or refused (no server on the port)",
        "reason": "with expect_error: what the error's detail must say, as text or {contains|regex: ...}",
    }
    expected_errors = ("timeout", "refused")
    transport = "udp"

    def parse(self, parser, raw, path, check) -> None:
        source = parser.source
        body = source.mapping(raw, path, self.keys, required=["name"])
        parser.expected_error(body, path, check)
        name = source.text(body["name"], path + ("name",), hint="(a domain name such as web.campus.lab)",
                           single_line=True).strip(".").lower()
        if len(name) > 253 or any(not 0 < len(label) < 64 for label in name.split(".")):
            raise source.error(path + ("name",), f"expected a domain name such as web.campus.lab, got {describe(body['name'])}")
        options = DnsOptions(name)
        if "type" in body:
            options.qtype = str(body["type"]).upper()
            if options.qtype not in QUERY_TYPES:
                raise source.error(path + ("type",), f"expected one of {', '.join(QUERY_TYPES)}, got {describe(body['type'])}")
        if "expect" in body:
            values = body["expect"] if isinstance(body["expect"], list) else [body["expect"]]
            for value in values:
                if isinstance(value, (dict, list)) or value is None:
                    # Answers are compared as values; a regex or contains form is not taken.
                    raise source.error(path + ("expect",), "expected answers as values (a name or an address, "
                                       f"or a list of them), got {describe(value)}")
            options.expect = [_canonical(source.text(str(value), path + ("expect",), single_line=True))
                              for value in values]
        if "expect_rcode" in body:
            options.rcode = str(body["expect_rcode"]).upper()
            if options.rcode not in RCODES:
                raise source.error(path + ("expect_rcode",), f"expected one of {', '.join(RCODES)}, "
                                   f"got {describe(body['expect_rcode'])}")
            if options.expect and options.rcode != "NOERROR":
                raise source.error(path + ("expect",), f"an answer comes with NOERROR, not {options.rcode}")
        if "tcp" in body:
            options.tcp = source.boolean(body["tcp"], path + ("tcp",))
        if check.expect_error and ("expect" in body or "expect_rcode" in body):
            raise source.error(path + ("expect_error",), "a check expects either an answer or an error, not both")
        check.options = options

    def probe_request(self, topology, check):
        options = check.options
        return {"dns": {"name": options.name, "type": options.qtype, "tcp": options.tcp}}

    def extra_problems(self, check, observation):
        answer = observation.get("dns") or {}
        options = check.options
        problems = []
        if answer.get("rcode") != options.rcode:
            problems.append(f"the answer's rcode is {answer.get('rcode')}, expected {options.rcode}")
        values = {str(record.get("value", "")).strip(".").lower() for record in answer.get("answers", [])}
        missing = [value for value in options.expect if value not in values]
        if missing:
            problems.append(f"no {', '.join(missing)} among the answers"
                            + (f" ({', '.join(sorted(values))})" if values else " (none came)"))
        return problems


def _canonical(value: str) -> str:
    """A name as the answers give it (lower case, no final dot), or an address in the form
    the server writes it: FD00:0010::3 and fd00:10::3 are one IPv6 address."""
    try:
        return str(ip_address(value))
    except ValueError:
        return value.strip(".").lower()


KIND = DnsKind()
