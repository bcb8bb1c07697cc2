"""Check kinds: each is one module under kinds/ that declares a `KIND`, found by looking
(labctl.checks.kinds.check_kinds).

A kind says which keys its block holds, how it parses them, what errors a check may expect
of it, what it asks the probe (run in the client host's network namespace), and how it judges
what the probe saw.
Adding a kind touches its module here and, if the probe must do something new, the
probe's handler table in services/probe.py; nothing else.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..model.topology import Topology
    from ..model.yamlsource import KeyPath
    from .pcap import Packet
    from .spec import CheckParser, CheckSpec

# What a check of any kind may carry beside its kind's block, with what each means.
COMMON_KEYS = {
    "name": "the check's name, unique in the lab (reports and scenarios use it)",
    "from": "the host the client runs on",
    "to": "the server: host:port (a host for ping and raw; NETWORK:PORT or GROUP:PORT broadcasts or "
          "multicasts udp)",
    "family": "4 or 6: run the check over IPv4 or IPv6 (both ends need an address in it)",
    "timeout": "how long the exchange may take before it fails with timeout, such as 3s (the default)",
    "latency": "the longest the exchange may take and still pass, such as 50ms",
    "within": "retry the check until it passes or this time runs out, such as 30s",
    "load": "many clients at once: {clients, requests or duration, and bounds}",
    "server": "what the server must have seen (false: nothing): {from, count, received, log}",
    "hint": "shown beside the reason when the check fails: what to look at",
    "points": "what passing the check is worth (1 unless given)",
    "overlap": "run beside other checks though its server is the lab's own program",
}


class CheckKind:
    """The base every kind overrides only where it differs."""
    name: str = ""
    summary: str = ""                      # what a check of this kind does, in one line
    keys: Mapping[str, str] = {}           # what the kind's own block may hold, and what each means
    check_keys: tuple[str, ...] = tuple(COMMON_KEYS)
    required: tuple[str, ...] = ("from", "to")
    expected_errors: tuple[str, ...] = ()
    transport: str = "tcp"                 # which of the target's ports it reaches
    takes_port: bool = True                # `to: host:port`; False: `to: host` (ping)
    fans_out: bool = False                 # `to:` may also be NETWORK:PORT or GROUP:PORT (udp)
    # How labctl runs it: `probe` (services/probe.py in a helper in the client host's network
    # namespace, batched per host),
    # `command` (the check's own program on the host), or `capture` (around a capture).
    runner: str = "probe"
    order: int = 100                       # where --help and errors list it

    # A kind with no server program to keep a transcript (ping) proves the server's side by
    # the change in one of the target's own counters (/proc/net/snmp: section, field) over
    # the round, which must reach what its checks say arrived (`counted`).
    counter: tuple[str, str] | None = None
    counter6: tuple[str, str] | None = None    # the same over IPv6 (/proc/net/snmp6)

    def counter_for(self, family: int) -> tuple[str, str] | None:
        return self.counter6 if family == 6 else self.counter

    def witnesses(self, check: CheckSpec) -> list[str]:
        """Hosts besides the target whose transcripts judge the check (who heard a broadcast)."""
        return []

    def witness_problems(self, check: CheckSpec, observation: dict[str, Any],
                         transcripts: dict[str, list[dict[str, Any]] | str]) -> list[str]:
        """What the witnesses' transcripts (or why one could not be read) say is wrong."""
        return []

    def absence_matters(self, check: CheckSpec) -> bool:
        """Whether a witness must show nothing (a listener that must not hear): then its
        output is read once more, so a line the engine logged late is not missed."""
        return False

    def proves_by_counter(self, check: CheckSpec) -> bool:
        """Whether this check's server's side is its target's counter."""
        return self.counter is not None and check.expect_error is None

    def counted(self, observation: dict[str, Any]) -> int:
        """How many the target must have counted for this observation."""
        return 0

    def parse(self, parser: CheckParser, raw: Any, path: KeyPath, check: CheckSpec) -> None:
        raise NotImplementedError

    def at_run(self, topology: Topology, check: CheckSpec) -> CheckSpec:
        """The check as it runs now: most are as written; a reach matrix's pair learns here
        whether a partition made now splits it."""
        return check

    def expand(self, parser: CheckParser, check: CheckSpec, path: KeyPath) -> list[CheckSpec] | None:
        """The checks this one stands for, reported one by one (a reachability matrix), or
        None: it stands for itself."""
        return None

    def link(self, parser: CheckParser, check: CheckSpec, known: list[CheckSpec], path: KeyPath) -> None:
        """Resolve what the check names among the lab's other checks; most name none."""

    def probe_request(self, topology: Topology, check: CheckSpec) -> dict[str, Any]:
        """What this kind adds to the probe's spec for one check."""
        return {}

    def problems(self, check: CheckSpec, observation: dict[str, Any]) -> list[str]:
        """Why the client's side fails, or []."""
        raise NotImplementedError

    # Each runner asks its kinds for one more thing: the probe, when to stop reading each
    # step's answer; a capture, what the packets it caught say is wrong.
    def read_rules(self, check: CheckSpec) -> list[dict[str, Any]]:
        raise NotImplementedError(f"a {self.name} check does not run through the probe")

    def capture_problems(self, topology: Topology, check: CheckSpec, packets: list[Packet]) -> list[str]:
        raise NotImplementedError(f"a {self.name} check does not run around a capture")
