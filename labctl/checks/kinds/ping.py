"""ping: ICMP echo requests to a host, and the share of replies that must come back.

`{from: alice, to: web, ping: {count: 3, min_share: 1, max_rtt: 50ms, size: 56}}` reads
"alice pings web 3 times with 56 bytes; every reply comes back within 50 ms". Expected
errors: `unreachable` (an ICMP error, or no route) and `timeout` (no reply at all).
The server's side is the target's own count of echo requests received (Icmp InEchos, or
Icmp6InEchos over IPv6, in its namespace), read before and after the round: the target needs no privilege.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass

from ...model.shaping import load_live

from ..exchange import ExchangeKind


@dataclass
class PingOptions:
    count: int = 3
    size: int = 56
    min_share: float = 1.0
    max_rtt_ms: float | None = None
    fails: str = ""            # a reach matrix's pair expected to fail, and why
    matrix: bool = False       # a reach matrix's pair: a partition in force makes it fail


class PingKind(ExchangeKind):
    name = "ping"
    order = 25
    summary = "ICMP echo requests to a host, and the share of replies that must come back"
    keys = {
        "count": "how many echo requests (3 unless given)",
        "size": "bytes of payload in each (56 unless given)",
        "min_share": "the least share of replies that must come back (all unless given)",
        "max_rtt": "the longest a reply may take, such as 50ms",
        "expect_error": "unreachable (no route, or an ICMP error) or timeout (no reply at all)",
        "reason": "with expect_error: what the error's detail must say, as text or {contains|regex: ...}",
    }
    expected_errors = ("unreachable", "timeout")
    transport = "icmp"
    takes_port = False
    counter = ("Icmp", "InEchos")
    counter6 = ("Icmp6", "InEchos")

    def matrix_options(self, count: int, fails: str) -> PingOptions:
        """A reach matrix's pair: every reply back, or (`fails` says why) none."""
        return PingOptions(count=count, fails=fails, matrix=True)

    def at_run(self, topology, check):
        if not check.options.matrix or check.options.fails:
            return check
        for sides in load_live(topology).partitions:
            if any(check.source in side and check.target in other
                   for side, other in ((sides[0], sides[1]), (sides[1], sides[0]))):
                split = copy.copy(check)
                split.options = dataclasses.replace(check.options, fails="partitioned now")
                return split
        return check

    def proves_by_counter(self, check) -> bool:
        return super().proves_by_counter(check) and not check.options.fails

    def counted(self, observation):
        return int((observation.get("icmp") or {}).get("received", 0))

    def parse(self, parser, raw, path, check) -> None:
        source = parser.source
        body = source.mapping({} if raw is None else raw, path, self.keys)
        parser.expected_error(body, path, check)
        options = PingOptions()
        if "count" in body:
            options.count = source.integer(body["count"], path + ("count",), 1, 1000, "a count")
        if "size" in body:
            options.size = source.integer(body["size"], path + ("size",), 0, 65000, "a payload size in bytes")
        if "min_share" in body:
            options.min_share = source.share(body["min_share"], path + ("min_share",))
        if "max_rtt" in body:
            options.max_rtt_ms = source.duration(body["max_rtt"], path + ("max_rtt",)) * 1000
        check.options = options

    def probe_request(self, topology, check):
        return {"icmp": {"count": check.options.count, "size": check.options.size}}

    def problems(self, check, observation):
        if not check.options.fails:
            return super().problems(check, observation)
        if observation.get("error") in self.expected_errors:
            return []
        if observation.get("error"):
            return [f"{observation['error']}: {observation.get('detail', '')}"]
        icmp = observation.get("icmp") or {}
        return [f"expected no reply ({check.options.fails}), but {icmp.get('received', 0)}/"
                f"{icmp.get('sent', 0)} echo replies came back"]

    def extra_problems(self, check, observation):
        icmp = observation.get("icmp") or {}
        sent, received = icmp.get("sent", 0), icmp.get("received", 0)
        share = received / max(1, sent)
        problems = []
        if share < check.options.min_share:
            problems.append(f"{received}/{sent} echo replies came back ({share:.0%}), "
                            f"below {check.options.min_share:.0%}")
        rtts = icmp.get("rtt_ms") or []
        if check.options.max_rtt_ms is not None and rtts and max(rtts) > check.options.max_rtt_ms:
            problems.append(f"the slowest reply took {max(rtts):.1f}ms, over the "
                            f"{check.options.max_rtt_ms:.0f}ms bound")
        return problems


KIND = PingKind()
