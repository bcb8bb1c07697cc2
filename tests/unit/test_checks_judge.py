"""Judging observations against expectations, and the report formats."""

from __future__ import annotations

import base64
import json

from labctl.checks import CheckResult, judge, summary, table, to_json
from labctl.checkspec import CheckSpec, Expectation


def observed(reply: str = "", **fields):
    return {"id": 0, "error": None, "detail": "", "reply": base64.b64encode(reply.encode()).decode(),
            **fields}


def spec(**fields) -> CheckSpec:
    return CheckSpec(name="c", source="a", target="b", port=7, protocol=fields.pop("protocol", "tcp"),
                     **fields)


def test_exact_contains_and_regex():
    assert judge(spec(expect=Expectation("exact", "hi\n")), observed("hi\n")) == (True, "")
    passed, reason = judge(spec(expect=Expectation("exact", "hi\n")), observed("ho\n"))
    assert not passed and "expected exactly 'hi\\n'" in reason
    assert judge(spec(expect=Expectation("contains", "ell")), observed("hello"))[0]
    assert judge(spec(expect=Expectation("regex", r"^h.l+o$")), observed("hello"))[0]
    assert not judge(spec(expect=Expectation("regex", r"^x")), observed("hello"))[0]


def test_expected_errors():
    refused = observed(error="refused", detail="connection refused")
    assert judge(spec(expect_error="refused"), refused) == (True, "")
    passed, reason = judge(spec(expect_error="timeout"), refused)
    assert not passed and "expected timeout, got refused" in reason
    passed, reason = judge(spec(expect_error="refused"), observed("fine"))
    assert not passed and "succeeded" in reason
    passed, reason = judge(spec(expect=Expectation("exact", "x")), refused)
    assert not passed and reason.startswith("refused")


def test_http_status_and_body():
    check = spec(protocol="http", status=200, body=Expectation("exact", "ok\n"))
    assert judge(check, observed("ok\n", status=200))[0]
    assert judge(check, observed("ok\n", status=503)) == (False, "expected status 200, got 503")
    assert not judge(check, observed("nope", status=200))[0]


def test_reports():
    results = [CheckResult("one", "a", "b", 7, "tcp", True, 3.2),
               CheckResult("two", "a", "b", 9, "tcp", False, 1.0, "refused: connection refused")]
    text = table(results)
    assert "a → b:9" in text and "FAIL" in text and "refused" in text
    assert summary(results, 1.5) == "1 passed, 1 failed in 1.50s"
    payload = json.loads(to_json(results, 1.5))
    assert payload["passed"] == 1 and payload["failed"] == 1
    assert payload["checks"][1]["reason"] == "refused: connection refused"
