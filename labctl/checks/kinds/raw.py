"""raw: IP packets of a chosen protocol number, with a chosen payload, sent to a host.

`{from: alice, to: web, raw: {protocol: 253, send: "hello", count: 2}}` reads "alice sends
web two IP packets of protocol 253 carrying hello". Raw IP has no answer: the client's side
is that the packets left; the server's side is a `raw-listener` service for that protocol
on the target, whose transcript must show them arriving from alice's address.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass

from ...model.topology import raw_protocol
from ..exchange import ExchangeKind


@dataclass
class RawOptions:
    protocol: int
    payload: bytes
    count: int = 1


class RawKind(ExchangeKind):
    name = "raw"
    order = 27
    summary = "IP packets of a chosen protocol number and payload, sent to a host's raw-listener"
    keys = {
        "protocol": "the IP protocol number (1 to 254, not TCP's 6 or UDP's 17; 253 and 254 are for experiments)",
        "send": "what each packet carries: text, {hex: ...}, {file: ./path} or {random: BYTES}",
        "count": "how many packets (1 unless given)",
        "expect_error": "unreachable: the packets cannot leave (no route)",
        "reason": "with expect_error: what the error's detail must say, as text or {contains|regex: ...}",
    }
    expected_errors = ("unreachable",)
    transport = "raw"
    takes_port = False

    def parse(self, parser, raw, path, check) -> None:
        source = parser.source
        body = source.mapping(raw, path, self.keys, required=["protocol", "send"])
        parser.expected_error(body, path, check)
        options = RawOptions(raw_protocol(source, body["protocol"], path + ("protocol",)),
                             parser.payload(body["send"], path + ("send",)))
        if "count" in body:
            options.count = source.integer(body["count"], path + ("count",), 1, 1000, "a count")
        # The target's raw listener is found, like any server, by its "port": the protocol.
        check.port = options.protocol
        check.options = options

    def probe_request(self, topology, check):
        return {"raw": {"protocol": check.options.protocol, "count": check.options.count,
                        "payload": base64.b64encode(check.options.payload).decode()}}

    def extra_problems(self, check, observation):
        sent = (observation.get("raw") or {}).get("sent", 0)
        if sent < check.options.count:
            return [f"only {sent} of {check.options.count} packets left"]
        return []


KIND = RawKind()
