"""JUnit XML, as CI systems read it: one testcase per check."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from ...checks.result import CheckResult, points, reason_with_hint, score, total
from . import ResultFormat


def render(results: list[CheckResult], seconds: float, suite: str) -> str:
    root = ET.Element("testsuites")
    node = ET.SubElement(root, "testsuite", name=suite, tests=str(len(results)),
                         failures=str(sum(not r.passed for r in results)), errors="0",
                         time=f"{seconds:.3f}")
    scored = ET.SubElement(node, "properties")
    ET.SubElement(scored, "property", name="score", value=points(score(results)))
    ET.SubElement(scored, "property", name="points", value=points(total(results)))
    for result in results:
        case = ET.SubElement(node, "testcase", classname=suite, name=result.name,
                             time=f"{result.elapsed_ms / 1000:.3f}")
        properties = ET.SubElement(case, "properties")
        ET.SubElement(properties, "property", name="points", value=points(result.points))
        if result.hint:
            ET.SubElement(properties, "property", name="hint", value=result.hint)
        if not result.passed:
            failure = ET.SubElement(case, "failure", message=result.reason, type="CheckFailed")
            failure.text = f"{result.route} {result.protocol}: {reason_with_hint(result)}"
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


FORMAT = ResultFormat("junit", "JUnit XML, one testcase per check", render)
