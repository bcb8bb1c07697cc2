"""What every kind that runs through the probe judges alike: an expected error and its
reason, the answer to each step, and the latency bound. A kind adds its own facts
(TLS certificates, HTTP status, UDP shares) in `extra_problems`."""

from __future__ import annotations

import base64
from typing import Any

from .expectation import with_client
from .kind import CheckKind
from .spec import CheckSpec


def decode(value: str | None) -> bytes:
    return base64.b64decode(value or "")


class ExchangeKind(CheckKind):

    def parse(self, parser, raw, path, check) -> None:
        body = parser.source.mapping(raw, path, self.keys)
        parser.steps(body, path, check)
        parser.expected_error(body, path, check)
        check.options = self.options(parser, body, path, check)

    def options(self, parser, body: dict[str, Any], path, check: CheckSpec) -> Any:
        """The kind's own options from its block; none by default."""
        return None

    def read_rules(self, check: CheckSpec) -> list[dict[str, Any]]:
        """When the probe may stop reading each step's answer; a check that expects an error
        reads until the verdict (an alert, a reset, or EOF)."""
        rules = [step.expect.read_rule() if step.expect else {"mode": "none"} for step in check.steps]
        if check.expect_error and rules:
            rules[-1] = {"mode": "drain"}
        return rules

    def problems(self, check: CheckSpec, observation: dict[str, Any]) -> list[str]:
        error, detail = observation.get("error"), observation.get("detail", "")
        if check.expect_error:
            if error == check.expect_error:
                if check.error_reason and (mismatch := check.error_reason.mismatch(detail)):
                    return [f"{error}, but the reason {mismatch}"]
                return []
            if error:
                return [f"expected {check.expect_error}, got {error}: {detail}"]
            return [f"expected {check.expect_error}, but the exchange succeeded"]
        if error:
            return [f"{error}: {detail}"]
        problems = self.answer_problems(check, observation) + self.extra_problems(check, observation)
        if check.latency_ms is not None and observation.get("elapsed_ms", 0) > check.latency_ms:
            problems.append(f"took {observation['elapsed_ms']:.1f}ms, over the {check.latency_ms:.0f}ms bound")
        return problems

    def answer_problems(self, check: CheckSpec, observation: dict[str, Any]) -> list[str]:
        problems: list[str] = []
        replies = observation.get("replies", [])
        local = observation.get("local") or []
        for position, step in enumerate(check.steps):
            if step.expect is None:
                continue
            reply = decode(replies[position]) if position < len(replies) else b""
            # {client} is the address the client really used, as its own socket reports it
            expectation = with_client(step.expect, local[0][0]) if local else step.expect
            mismatch = expectation.mismatch(reply)
            if mismatch:
                problems.append(self.step_name(check, position) + mismatch)
        return problems

    def step_name(self, check: CheckSpec, position: int) -> str:
        return f"step {position + 1}: " if len(check.steps) > 1 else ""

    def extra_problems(self, check: CheckSpec, observation: dict[str, Any]) -> list[str]:
        return []
