"""tcp: send bytes (or several steps on one connection) and expect the answer, or an error."""

from __future__ import annotations

from ..exchange import ExchangeKind

# A stream's keys (tcp, and tls inside TLS), with what each means.
STREAM_KEYS = {
    "send": "what the client sends: text, {hex: ...}, {file: ./path}, {text: ...} or {random: BYTES}",
    "expect": "the answer: exact text, or {contains|regex|json|length: ...}",
    "steps": "several exchanges on one connection: a list of {send, expect}",
    "expect_error": "the error the exchange must end in instead of an answer",
    "reason": "with expect_error: what the error's detail must say, as text or {contains|regex: ...}",
}


class TcpKind(ExchangeKind):
    name = "tcp"
    order = 10
    summary = "send bytes over TCP (or several steps on one connection) and expect the answer, or an error"
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
