"""Student text stays text: every escape of labctl.text, and every output that shows text
from elsewhere (the terminal table, CSV, Markdown, JUnit, JSON, HTML, graph labels,
progress lines), on hostile text and, property-based, on any text at all."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import xml.etree.ElementTree as ET

from hypothesis import given, settings, strategies as st

from labctl.checks.result import CheckResult
from labctl.cli.context import Progress
from labctl.cli.formats import result_formats
from labctl.cli.gradebook import csv_text, html_page, table
from labctl.cli.views import columns
from labctl.engines.factory import read_lab
from labctl.ops.grade import Graded
from labctl.render.graph import dot_document, mermaid_document
from labctl.text import csv_cell, file_part, html, json_safe, markdown, one_line, unicode_safe, visible, xml

# Any code point at all: controls, lone surrogates, unassigned, private use.
ANY_TEXT = st.text(alphabet=st.characters(codec=None, exclude_categories=()), max_size=60)
# What a terminal acts on: C0 (but the line break between rows), DEL, C1.
RAW_CONTROL = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f]")
XML_FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
HOSTILE = "\x1b[2J\x1b]0;pwned\x07 =cmd|' /C calc'!A0 \u202egnp.exe\r\n" + os.fsdecode(b"\xff\xfe") + "\x00\x9b31m"
UNDECODABLE = os.fsdecode(b"b\xe9a\xff")


def result(name: str = "check", reason: str = "", passed: bool = False, hint: str | None = None,
           preview: str = "x") -> CheckResult:
    return CheckResult(name, "alice", "web", 80, "http", passed, 2.0, reason, hint=hint,
                       server=[{"peer": "10.0.0.2", "peer_port": 4000, "bytes_in": 1, "bytes_out": 1,
                                "preview": preview}])


# The escapes themselves.

def test_visible_writes_out_controls_bytes_and_overrides():
    assert visible("a\x1b[2Jb") == "a\\x1b[2Jb"
    assert visible("line\nnext\tcol\r") == "line\\nnext\\tcol\\r"
    assert visible("\x00\x7f\x9b") == "\\x00\\x7f\\x9b"
    assert visible(UNDECODABLE) == "b\\xe9a\\xff"            # the byte a file name held
    assert visible("\ud800") == "\\ud800"                     # a lone surrogate of no byte
    assert visible("abc\u202edef\u2066\u2028\ufeff\uffff") == "abc\\u202edef\\u2066\\u2028\\ufeff\\uffff"
    assert visible("é ü 日本 🙂 a\\nb") == "é ü 日本 🙂 a\\nb"  # text and backslashes stay as they were
    assert visible("a\nb\x1b", keep="\n") == "a\nb\\x1b"
    assert visible(visible(HOSTILE)) == visible(HOSTILE)      # escaping twice changes nothing


def test_one_line_cuts_after_escaping():
    assert one_line("a\nb") == "a\\nb"
    assert one_line("x" * 50, 10) == "xxxxxxx..." and len(one_line("\x1b" * 50, 20)) == 20


def test_csv_cells_are_never_formulas():
    for text in ("=1+2", "+1", "-1", "@SUM(A1)", "  =HYPERLINK(\"x\")"):
        assert csv_cell(text).startswith("'") and csv_cell(text)[1:] == text
    assert csv_cell("\t=1") == "\\t=1" and csv_cell("\r=1") == "\\r=1"   # written out, so no formula
    assert csv_cell("ada") == "ada" and csv_cell(3) == "3" and csv_cell("a=b") == "a=b"


def test_markdown_is_literal():
    assert markdown("a|b") == "a\\|b"
    assert markdown("[click](http://x) ![i](y) <img src=x onerror=alert(1)> *b* _i_ `c` ~~s~~ &lt;") == \
        "\\[click\\](http://x) \\!\\[i\\](y) \\<img src=x onerror=alert(1)\\> \\*b\\* \\_i\\_ \\`c\\` \\~\\~s\\~\\~ \\&lt;"
    assert markdown("'x\\n'") == "'x\\n'"          # a backslash before a letter is literal already
    assert markdown("\\*") == "\\\\\\*" and markdown("end\\") == "end\\\\"
    assert markdown("a\nb\x1b") == "a\\nb\\x1b"


def test_xml_and_html_and_json():
    assert xml("a\x00b\x0bc\ufffe\udcff") == "a\\x00b\\x0bc\\ufffe\\xff"
    assert xml("a\nb\rc", keep="\n\r") == "a\nb\\rc"
    assert html("<b>\x1b & \"q\"") == "&lt;b&gt;\\x1b &amp; &quot;q&quot;"
    assert html("a\nb", keep="\n") == "a<br>b"
    assert unicode_safe(UNDECODABLE + "\x1b") == "b\\xe9a\\xff\x1b"   # JSON escapes controls itself
    safe = json_safe({"student": UNDECODABLE, "list": [UNDECODABLE, 1, None], UNDECODABLE: (b"\xff",)})
    text = json.dumps(safe, ensure_ascii=False)
    assert json.loads(text.encode("utf-8").decode("utf-8"))["student"] == "b\\xe9a\\xff"
    assert "b\\xe9a\\xff" in json.loads(text)


def test_file_parts_are_safe_names():
    assert file_part("../../etc/passwd") == "_.._etc_passwd"
    assert file_part(".hidden") == "hidden" and file_part("-rf") == "rf"
    assert file_part("") == "_" and file_part("...") == "_" and file_part("/") == "_"
    assert file_part("a\x1b[2Jb c", 40) == "a_2Jb_c"
    assert file_part(UNDECODABLE) == "b_a_" and len(file_part("x" * 500, 40)) == 40


# Each output, on hostile text.

def test_the_check_table_shows_a_hostile_reason_on_one_line():
    results = [result(HOSTILE, reason=HOSTILE, hint=HOSTILE)]
    text = result_formats()["table"].render(results, 1.0, "lab")
    assert not RAW_CONTROL.search(text) and "\\x1b[2J" in text and "\\u202e" in text
    assert len(text.splitlines()) == 3   # header, the row, the summary


def test_markdown_report_holds_no_markup_of_the_students():
    text = result_formats()["markdown"].render([result("<script>", reason="[x](http://evil) \x1b[31m")],
                                               1.0, "lab")
    assert "<script>" not in text and "\\<script\\>" in text
    assert "\\[x\\](http://evil) \\x1b\\[31m" in text and not RAW_CONTROL.search(text)


def test_junit_parses_whatever_a_server_said():
    results = [result(HOSTILE, reason=HOSTILE, hint=HOSTILE, preview=HOSTILE), result("ok", passed=True)]
    text = result_formats()["junit"].render(results, 1.0, HOSTILE)
    suite = ET.fromstring(text.split("\n", 1)[1]).find("testsuite")
    assert suite is not None and suite.get("name") == one_line(HOSTILE)
    case = suite.findall("testcase")[0]
    assert case.get("name") == one_line(HOSTILE)
    assert case.find("failure").get("message") == one_line(HOSTILE)
    assert {p.get("name"): p.get("value") for p in case.find("properties")}["hint"] == one_line(HOSTILE)


def test_junit_says_why_no_check_ran():
    text = result_formats()["junit"].render([], 3.0, "lab", error="never ready: \x1b crashed",
                                            properties={"student": UNDECODABLE})
    suite = ET.fromstring(text.split("\n", 1)[1]).find("testsuite")
    assert (suite.get("tests"), suite.get("errors")) == ("1", "1")
    assert suite.find("testcase/error").get("message") == "never ready: \\x1b crashed"
    assert {p.get("name"): p.get("value") for p in suite.find("properties")}["student"] == "b\\xe9a\\xff"


def test_json_report_encodes_whatever_a_name_held():
    text = result_formats()["json"].render([result(UNDECODABLE, reason=HOSTILE)], 1.0, "lab")
    payload = json.loads(text.encode("utf-8"))
    assert payload["checks"][0]["name"] == "b\\xe9a\\xff"
    assert payload["checks"][0]["reason"] == unicode_safe(HOSTILE)   # JSON escaped the controls itself


def test_html_report_escapes_and_shows_controls():
    page = result_formats()["html"].render([result("<img src=x>", reason=HOSTILE)], 1.0, "lab <b>",
                                           note="left out:\n\x1b")
    assert "<img" not in page and "&lt;img src=x&gt;" in page and "lab &lt;b&gt;" in page
    assert "\\x1b[2J" in page and not RAW_CONTROL.search(page.replace("\n", "")) and "left out:<br>\\x1b" in page


def test_the_class_files_show_hostile_names_escaped():
    rows = [Graded("=HYPERLINK(\"x\"), a: 'b' c", score=3, points=3),
            Graded(UNDECODABLE, number=2, points=3, failures=[("upper\x1b[2J", "=cmd|' /C calc'!A0\nnext")]),
            Graded("-rf\u202e", number=3, points=3, error="never ready: \x9b31m")]
    parsed = list(csv.reader(io.StringIO(csv_text(rows))))
    assert [row[0] for row in parsed[1:]] == ["'=HYPERLINK(\"x\"), a: 'b' c", "b\\xe9a\\xff", "'-rf\\u202e"]
    assert parsed[2][6] == "upper\\x1b[2J: =cmd|' /C calc'!A0\\nnext"
    assert not any(RAW_CONTROL.search(cell) or cell.startswith(("=", "+", "-", "@")) for row in parsed for cell in row)
    shown = table(rows)
    assert not RAW_CONTROL.search(shown) and "b\\xe9a\\xff" in shown and len(shown.splitlines()) == 4
    page = html_page(rows, "lab")
    assert "\\x1b[2J" in page and "\\x9b31m" in page and "b\\xe9a\\xff" in page
    page.encode("utf-8")   # no lone surrogate left to fail it


def test_graph_labels_from_the_lab_file_are_written_out(write_lab):
    topology = read_lab(write_lab("""
        name: g
        networks: {n: {subnet: 10.9.0.0/24}}
        hosts:
          a: {networks: [n], command: ["echo", "x\\u001b[2J <b>#quot; \\u202e"]}
    """)).topology
    dot, mermaid = dot_document(topology), mermaid_document(topology)
    assert "\x1b" not in dot and "\\\\x1b[2J" in dot and "\\\\u202e" in dot
    assert "\x1b" not in mermaid and "#lt;b#gt;" in mermaid and "#35;quot;" in mermaid and "<b>" not in mermaid


def test_progress_lines_are_one_line():
    stream = io.StringIO()
    Progress(stream)(f"submission 3 {UNDECODABLE}: \x1b[2J\nforged line")
    assert stream.getvalue() == "labctl: submission 3 b\\xe9a\\xff: \\x1b[2J\\nforged line\n"


# Any text at all.

@settings(max_examples=200, deadline=None)
@given(name=ANY_TEXT, reason=ANY_TEXT, hint=ANY_TEXT, suite=ANY_TEXT)
def test_any_text_makes_parseable_junit(name, reason, hint, suite):
    text = result_formats()["junit"].render([result(name, reason, hint=hint or None, preview=reason)], 1.0, suite,
                                            error=reason, properties={"student": name})
    assert not XML_FORBIDDEN.search(text)
    suite_node = ET.fromstring(text.encode("utf-8")).find("testsuite")
    assert suite_node.find("testcase").get("name") == one_line(name)


@settings(max_examples=200, deadline=None)
@given(students=st.lists(ANY_TEXT, min_size=1, max_size=4), reason=ANY_TEXT)
def test_any_text_makes_csv_that_reads_back_with_no_formula(students, reason):
    rows = [Graded(student, number=n, points=2, failures=[(reason, reason)]) for n, student in enumerate(students, 1)]
    text = csv_text(rows)
    text.encode("utf-8")
    parsed = list(csv.reader(io.StringIO(text, newline="")))
    assert len(parsed) == len(rows) + 1 and all(len(row) == len(parsed[0]) for row in parsed)
    assert [row[0] for row in parsed[1:]] == [csv_cell(student) for student in students]
    for row in parsed:
        for cell in row:
            assert not cell.lstrip(" ").startswith(("=", "+", "-", "@")) and not RAW_CONTROL.search(cell)


@settings(max_examples=200, deadline=None)
@given(cells=st.lists(st.tuples(ANY_TEXT, ANY_TEXT), min_size=1, max_size=4), reason=ANY_TEXT)
def test_any_text_leaves_no_raw_control_on_a_terminal(cells, reason):
    shown = columns(cells)
    assert not RAW_CONTROL.search(shown) and len(shown.split("\n")) == len(cells)
    rows = [Graded(name, number=1, failures=[(other, reason)]) for name, other in cells]
    for text in (table(rows), result_formats()["table"].render([result(reason, reason, hint=reason)], 1.0, "lab")):
        assert not RAW_CONTROL.search(text) and not re.search("[\ud800-\udfff\u202a-\u202e\u2066-\u2069]", text)
        text.encode("utf-8")


@settings(max_examples=100, deadline=None)
@given(name=ANY_TEXT, reason=ANY_TEXT)
def test_any_text_makes_html_markdown_and_json_that_encode(name, reason):
    results = [result(name, reason, hint=reason, preview=reason)]
    page = result_formats()["html"].render(results, 1.0, name, note=reason)
    assert f"<td>{html(name)}</td>" in page
    for text in (page, result_formats()["markdown"].render(results, 1.0, name)):
        text.encode("utf-8")
        assert not RAW_CONTROL.search(text.replace("\n", ""))
    document = result_formats()["json"].render(results, 1.0, name)
    assert json.loads(document.encode("utf-8"))["checks"][0]["name"] == unicode_safe(name)
