"""udp: send N datagrams and expect a share of them (or their answer) back; or send them
to a whole network (its broadcast address) or to a multicast group, and say who hears them.

`{from: alice, to: lan:5000, udp: {send: hi, heard_by: [bob], not_heard_by: [web]}}` reads
"alice broadcasts hi on lan, port 5000: bob hears it, web does not". Who heard what is read
from the `udp-listener` services' transcripts, by the client's own address and port.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ...model.yamlsource import describe
from ..exchange import ExchangeKind


@dataclass
class UdpOptions:
    count: int = 1
    min_share: float = 1.0
    max_share: float = 1.0     # below 1: the check asserts that datagrams were lost
    heard_by: list[str] = field(default_factory=list)       # fan-out: who must hear it
    not_heard_by: list[str] = field(default_factory=list)   # fan-out: who must not


class UdpKind(ExchangeKind):
    name = "udp"
    order = 20
    summary = "send datagrams and expect a share of them (or their answer) back, or send them to a network or group"
    keys = {
        "send": "what each datagram carries: text, {hex: ...}, {file: ./path} or {random: BYTES}",
        "expect": "the answer: exact text, or {contains|regex|json|length: ...}",
        "count": "how many datagrams to send (1 unless given)",
        "min_share": "the least share of them that must come back, such as 90% (all unless given)",
        "max_share": "the largest share of them that may come back, such as 90%: asserts that some were lost",
        "expect_error": "the error the exchange must end in instead of an answer",
        "reason": "with expect_error: what the error's detail must say, as text or {contains|regex: ...}",
        "heard_by": "to a network or group: the hosts (with a udp-listener on the port) that must hear it",
        "not_heard_by": "to a network or group: the hosts (with a udp-listener on the port) that must not",
    }
    expected_errors = ("refused", "timeout")
    transport = "udp"
    fans_out = True

    def options(self, parser, body, path, check) -> UdpOptions:
        source = parser.source
        if not check.steps or not check.steps[0].send:
            raise source.error(path, "a UDP check needs something to send")
        options = UdpOptions()
        if "count" in body:
            options.count = source.integer(body["count"], path + ("count",), 1, 100000, "a count")
        if check.fan_out:
            self._audience(parser, body, path, check, options)
            return options
        for key in ("heard_by", "not_heard_by"):
            if key in body:
                raise source.error(path + (key,), f"{key} goes with a broadcast (to: NETWORK:PORT) "
                                   "or a multicast group (to: GROUP:PORT)")
        if "min_share" in body:
            options.min_share = source.share(body["min_share"], path + ("min_share",))
        if "max_share" in body:
            options.max_share = source.share(body["max_share"], path + ("max_share",))
            if "min_share" not in body:
                options.min_share = 0.0
            if options.max_share < options.min_share:
                raise source.error(path + ("max_share",), "max_share is below min_share")
        return options

    def _audience(self, parser, body, path, check, options: UdpOptions) -> None:
        source, (fan, where) = parser.source, check.fan_out
        for key in ("expect", "min_share", "max_share", "expect_error"):
            if key in body:
                raise source.error(path + (key,), f"a {fan} gets no answer: say who hears it "
                                   "with heard_by and not_heard_by")
        if "heard_by" not in body and "not_heard_by" not in body:
            raise source.error(path, f"a {fan} check says who hears it: heard_by, not_heard_by or both")
        for key in ("heard_by", "not_heard_by"):
            hosts = source.sequence(body.get(key, []), path + (key,))
            for index, raw in enumerate(hosts):
                where_path = path + (key, index)
                host = parser.host(raw, where_path)
                listener = next((s for s in parser.topology.hosts[host].services
                                 if s.kind == "udp-listener" and s.port == check.port), None)
                if listener is None:
                    raise source.error(where_path, f"{host} has no udp-listener on port {check.port}, "
                                       f"so it could not tell whether it heard the {fan}")
                if key == "heard_by" and fan == "multicast" and listener.group != where:
                    raise source.error(where_path, f"{host}'s udp-listener on port {check.port} joins "
                                       f"{listener.group or 'no group'}, not {where}: it cannot hear it")
                getattr(options, key).append(host)
        both = set(options.heard_by) & set(options.not_heard_by)
        if both:
            raise source.error(path, f"{describe(sorted(both)[0])} is both in heard_by and not_heard_by")

    def probe_request(self, topology, check):
        request = {"udp_count": check.options.count}
        if check.fan_out:
            fan, where = check.fan_out
            address = topology.networks[where].subnet.broadcast_address if fan == "broadcast" else where
            request.update({"fan_out": fan, "address": str(address)})
        return request

    def extra_problems(self, check, observation):
        if check.fan_out:
            return []
        udp = observation.get("udp", {})
        share = udp.get("received", 0) / max(1, udp.get("sent", 1))
        counted = f"{udp.get('received')}/{udp.get('sent')} datagrams came back ({share:.0%})"
        if share < check.options.min_share:
            return [f"{counted}, below {check.options.min_share:.0%}"]
        if share > check.options.max_share:
            return [f"{counted}, above the {check.options.max_share:.0%} bound"]
        return []

    def witnesses(self, check):
        return [*check.options.heard_by, *check.options.not_heard_by] if check.fan_out else []

    def absence_matters(self, check):
        return bool(check.fan_out and check.options.not_heard_by)

    def witness_problems(self, check, observation, transcripts):
        local = {(str(address), port) for address, port in observation.get("local", [])}
        fan = check.fan_out[0] if check.fan_out else "datagram"
        problems = []
        for host in self.witnesses(check):
            entries = transcripts.get(host)
            if isinstance(entries, str) or entries is None:
                problems.append(f"cannot read {host}'s transcript: {entries or 'not read'}")
                continue
            heard = [e for e in entries if e.get("port") == check.port and (e.get("peer"), e.get("peer_port")) in local]
            if host in check.options.heard_by and not heard:
                problems.append(f"{host} did not hear the {fan}")
            elif host in check.options.not_heard_by and heard:
                problems.append(f"{host} heard the {fan}, and must not")
        return problems


KIND = UdpKind()
