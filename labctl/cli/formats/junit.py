"""JUnit XML, as CI systems read it: one testcase per check. Every text in it (names,
reasons, hints, what a student's server said) holds only what XML 1.0 allows, the rest
written out visibly, so the file always parses."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from ...checks.result import CheckResult, points, reason_with_hint, score, total
from ...text import one_line, xml
from . import ResultFormat

# The testcase that stands for a lab that never got to its checks.
NOT_RUN = "the lab runs"


def _properties(parent: ET.Element, values: dict[str, str]) -> None:
    node = ET.SubElement(parent, "properties")
    for name, value in values.items():
        ET.SubElement(node, "property", name=xml(name), value=xml(one_line(value)))


def render(results: list[CheckResult], seconds: float, suite: str, error: str = "",
           properties: dict[str, str] | None = None) -> str:
    """`error`: why the checks never ran (one testcase then says so); `properties`: more of
    the suite's own (a graded student's name)."""
    root = ET.Element("testsuites")
    node = ET.SubElement(root, "testsuite", name=xml(one_line(suite)), tests=str(len(results) + bool(error)),
                         failures=str(sum(not r.passed for r in results)), errors=str(int(bool(error))),
                         time=f"{seconds:.3f}")
    _properties(node, {"score": points(score(results)), "points": points(total(results)), **(properties or {})})
    for result in results:
        case = ET.SubElement(node, "testcase", classname=xml(one_line(suite)), name=xml(one_line(result.name)),
                             time=f"{result.elapsed_ms / 1000:.3f}")
        _properties(case, {"points": points(result.points), **({"hint": result.hint} if result.hint else {})})
        if not result.passed:
            failure = ET.SubElement(case, "failure", message=xml(one_line(result.reason)), type="CheckFailed")
            failure.text = xml(f"{result.route} {result.protocol}: {reason_with_hint(result)}", keep="\n")
    if error:
        case = ET.SubElement(node, "testcase", classname=xml(one_line(suite)), name=NOT_RUN, time=f"{seconds:.3f}")
        problem = ET.SubElement(case, "error", message=xml(one_line(error)), type="NotGraded")
        problem.text = xml(error, keep="\n")
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


FORMAT = ResultFormat("junit", "JUnit XML, one testcase per check", render)
