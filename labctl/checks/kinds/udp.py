"""udp: send N datagrams and expect a share of them (or their answer) back."""

from __future__ import annotations

from dataclasses import dataclass

from ..exchange import ExchangeKind


@dataclass
class UdpOptions:
    count: int = 1
    min_share: float = 1.0
    max_share: float = 1.0     # below 1: the check asserts that datagrams were lost


class UdpKind(ExchangeKind):
    name = "udp"
    order = 20
    keys = ("send", "expect", "count", "min_share", "max_share", "expect_error", "reason")
    expected_errors = ("refused", "timeout")
    transport = "udp"

    def options(self, parser, body, path, check) -> UdpOptions:
        source = parser.source
        if not check.steps or not check.steps[0].send:
            raise source.error(path, "a UDP check needs something to send")
        options = UdpOptions()
        if "count" in body:
            options.count = source.integer(body["count"], path + ("count",), 1, 100000, "a count")
        if "min_share" in body:
            options.min_share = source.share(body["min_share"], path + ("min_share",))
        if "max_share" in body:
            options.max_share = source.share(body["max_share"], path + ("max_share",))
            if "min_share" not in body:
                options.min_share = 0.0
            if options.max_share < options.min_share:
                raise source.error(path + ("max_share",), "max_share is below min_share")
        return options

    def probe_request(self, topology, check):
        return {"udp_count": check.options.count}

    def extra_problems(self, check, observation):
        udp = observation.get("udp", {})
        share = udp.get("received", 0) / max(1, udp.get("sent", 1))
        counted = f"{udp.get('received')}/{udp.get('sent')} datagrams came back ({share:.0%})"
        if share < check.options.min_share:
            return [f"{counted}, below {check.options.min_share:.0%}"]
        if share > check.options.max_share:
            return [f"{counted}, above the {check.options.max_share:.0%} bound"]
        return []


KIND = UdpKind()
