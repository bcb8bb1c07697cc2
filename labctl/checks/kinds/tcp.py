"""tcp: send bytes (or several steps on one connection) and expect the answer, or an error."""

from __future__ import annotations

from ..exchange import ExchangeKind

STREAM_KEYS = ("send", "expect", "steps", "expect_error", "reason")


class TcpKind(ExchangeKind):
    name = "tcp"
    order = 10
    keys = STREAM_KEYS
    expected_errors = ("refused", "timeout", "reset")

    def read_rules(self, check):
        rules = []
        for position, step in enumerate(check.steps):
            if step.expect is not None:
                rules.append(step.expect.read_rule())
            elif position == len(check.steps) - 1 and step.send:
                rules.append({"mode": "eof"})
            else:
                rules.append({"mode": "none"})
        if check.expect_error and rules:
            rules[-1] = {"mode": "drain"}
        elif len(check.steps) == 1 and check.steps[0].send:
            # A single exchange half-closes and reads to the end, so surplus bytes are seen.
            rules[-1] = {"mode": "eof"}
        return rules


KIND = TcpKind()
