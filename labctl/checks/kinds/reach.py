"""reach: a reachability matrix, one ping per pair, reported one row per pair.

`{name: lan, reach: {from: [alice, bob], to: all, fail: [[alice, vault]]}}` reads "alice
and bob each reach every other host, except that alice must not reach vault". With
`family: 6` the pings go over IPv6, and hosts with no IPv6 address are left out. Unlike
Mininet's pingall it says which pairs should fail: a pair with no routed path between
them, one a partition in force splits (`labctl partition`, a scenario step), or one the lab
lists under `fail`, must get no reply, and passes only then.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

from ...model.addressing import reachable_networks
from ...model.yamlsource import describe
from ..kind import CheckKind
from .ping import KIND as PING


@dataclass
class ReachOptions:
    sources: list[str] = field(default_factory=list)
    targets: list[str] = field(default_factory=list)
    count: int = 1
    fail: set[tuple[str, str]] = field(default_factory=set)


class ReachKind(CheckKind):
    name = "reach"
    order = 26
    summary = "a reachability matrix: a ping per pair of hosts, reported one row per pair"
    keys = {
        "from": "the hosts that ping: a list, or all",
        "to": "the hosts they ping: a list, or all",
        "count": "echo requests per pair (1 unless given)",
        "fail": "pairs [from, to] that must get no reply",
    }
    check_keys = ("name", "timeout", "family", "hint", "points", "reach")
    required = ()
    takes_port = False

    def parse(self, parser, raw, path, check) -> None:
        source = parser.source
        body = source.mapping(raw, path, self.keys, required=["from", "to"])
        options = ReachOptions(sources=self._hosts(parser, body["from"], path + ("from",)),
                               targets=self._hosts(parser, body["to"], path + ("to",)))
        if "count" in body:
            options.count = source.integer(body["count"], path + ("count",), 1, 100, "a count")
        pairs = source.sequence(body.get("fail", []), path + ("fail",))
        for index, pair in enumerate(pairs):
            where = path + ("fail", index)
            if not isinstance(pair, list) or len(pair) != 2:
                raise source.error(where, f"expected a pair [from, to] such as [alice, web], got {describe(pair)}")
            first, second = (parser.host(host, where) for host in pair)
            options.fail.add((first, second))
        check.options = options

    @staticmethod
    def _hosts(parser, raw, path) -> list[str]:
        if raw == "all":
            return list(parser.topology.hosts)
        hosts = parser.source.sequence(raw, path)
        if not hosts:
            raise parser.source.error(path, "expected at least one host, or all")
        return [parser.host(host, path + (index,)) for index, host in enumerate(hosts)]

    def expand(self, parser, check, path):
        topology, options = parser.topology, check.options
        checks = []

        def has_family(host: str) -> bool:   # `family: 6` leaves out hosts with no IPv6
            return check.family is None or any(check.family in topology.hosts[host].families_on(n)
                                               for n in topology.hosts[host].networks)
        for source in filter(has_family, options.sources):
            routed = reachable_networks(topology, topology.hosts[source], check.family)
            for target in filter(has_family, options.targets):
                if target == source:
                    continue
                pair = copy.copy(check)
                pair.name = f"{check.name}: {source} → {target}"
                pair.source, pair.target, pair.port, pair.kind = source, target, None, PING
                reachable = {n for n in topology.hosts[target].networks
                             if check.family is None or check.family in topology.hosts[target].families_on(n)}
                reason = ("listed under fail" if (source, target) in options.fail else
                          "no routed path" if not reachable & routed else "")
                pair.options = PING.matrix_options(options.count, reason)
                checks.append(pair)
        if not checks:
            raise parser.source.error(path + ("reach",), "the matrix has no pair of two different hosts")
        return checks


KIND = ReachKind()
