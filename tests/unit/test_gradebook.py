"""What `labctl grade` writes for a class, without an engine: the teacher's CSV and page, the
gradebook a platform imports (with a roster), and each student's report, JUnit, Gradescope
and PrairieLearn results and grade.json, which the next run reads back."""

from __future__ import annotations

import csv
import io
import json
import os
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from labctl.checks.result import CheckResult
from labctl.cli import gradebook
from labctl.cli.gradebook import (previous_rows, read_roster, row_from_json, row_json, student_folder,
                                  write_all)
from labctl.cli.main import main
from labctl.cli.parser import build_parser
from labctl.errors import LabError, LabFileError
from labctl.ops.grade import Graded

UNDECODABLE = os.fsdecode(b"b\xe9a\xff")


def check(name: str, passed: bool, points: float = 1.0, reason: str = "", hint: str | None = None) -> CheckResult:
    return CheckResult(name, "student", "server", 9000, "tcp", passed, 12.0, reason, hint=hint, points=points,
                       server=[{"peer": "10.0.0.2", "peer_port": 4000, "bytes_in": 6, "bytes_out": 6,
                                "preview": "hello\n"}], observed={"answer": "HELLO\n"})


def class_rows() -> list[Graded]:
    ada = Graded("ada", number=1, score=3, points=3, passed=2, seconds=3.2, digest="d1",
                 results=[check("upper case", True, 2), check("again", True)])
    bea = Graded(UNDECODABLE, number=2, score=2, points=3, passed=1, failed=1, seconds=4.0, digest="d2",
                 failures=[("again", "expected 'AGAIN\\n', got 'again\\n' (hint: upper)")],
                 results=[check("upper case", True, 2),
                          check("again", False, reason="expected 'AGAIN\\n', got 'again\\n'\x1b[2J", hint="upper")],
                 notes=["not copied: pipe: a named pipe"])
    cal = Graded("=cal, jr", number=3, points=3, seconds=1.0, error="never ready: host 'server' exited with code 1")
    dee = Graded("../dee", number=4, points=3, error="not graded: internal error: boom",
                 trouble="not graded: internal error: boom")
    return [ada, bea, cal, dee]


def _csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as reading:
        return list(csv.DictReader(reading))


def test_student_folders_are_numbered_and_safe():
    names = [student_folder(row) for row in class_rows()]
    assert names == ["1-ada", "2-b_a_", "3-_cal_jr", "4-_dee"]
    long = Graded(".\x1b/" + "x" * 300, number=12)
    assert student_folder(long) == "12-_" + "x" * 39 and "/" not in student_folder(long)


def test_write_all_lays_out_the_class(tmp_path):
    out = tmp_path / "grades"
    written = write_all(class_rows(), out, "upper", None, None)
    relative = sorted(str(path.relative_to(out)) for path in written)
    assert relative == sorted(["grades.csv", "grades.html", "gradebook.csv"] + [
        f"students/{folder}/{file}" for folder in ("1-ada", "2-b_a_", "3-_cal_jr", "4-_dee")
        for file in ("report.html", "junit.xml", "gradescope/results.json", "prairielearn/results.json",
                     "grade.json")])
    rows = _csv(out / "grades.csv")
    assert [row["student"] for row in rows] == ["ada", "b\\xe9a\\xff", "'=cal, jr", "../dee"]
    assert rows[1]["failed checks"] == "again: expected 'AGAIN\\n', got 'again\\n' (hint: upper); " \
                                       "not copied: pipe: a named pipe"
    page = (out / "grades.html").read_text(encoding="utf-8")
    assert '<a href="students/2-b_a_/report.html">b\\xe9a\\xff</a>' in page and page.count("<tr>") == 5


def test_the_gradebook_is_keyed_by_the_folder_or_the_roster(tmp_path):
    out = tmp_path / "grades"
    write_all(class_rows(), out, "upper", "SIS User ID", None)
    with open(out / "gradebook.csv", newline="", encoding="utf-8") as reading:
        table = list(csv.reader(reading))
    # The row the run itself failed has no score: importing it changes nothing.
    assert table == [["SIS User ID", "upper (points)"], ["ada", "3"], ["b\\xe9a\\xff", "2"], ["'=cal, jr", "0"],
                     ["../dee", ""]]
    roster = tmp_path / "roster.csv"
    roster.write_text("\ufeffName,folder,SIS User ID\nAda L,ada,S-001\nCal,\"=cal, jr \",S-003\n"
                      "Dee,../dee,S-004\n\n", encoding="utf-8")
    said: list[str] = []
    write_all(class_rows(), out, "upper", "SIS User ID", roster, say=said.append)
    with open(out / "gradebook.csv", newline="", encoding="utf-8") as reading:
        table = list(csv.reader(reading))
    assert table == [["SIS User ID", "upper (points)"], ["S-001", "3"], ["S-003", "0"], ["S-004", ""]]
    assert said == ["gradebook.csv leaves out 1 submissions the roster does not name: b\\xe9a\\xff"]
    # Without --id-column, the roster's ID column names it (the first column that is not the folder).
    assert read_roster(roster, None) == ("Name", {"ada": "Ada L", "=cal, jr": "Cal", "../dee": "Dee"})


@pytest.mark.parametrize("text, words", [
    ("folder\n", r"roster.csv:1: expected a header of at least two columns"),
    ("folder,ID\nada,1\nada,2\n", r"roster.csv:3: folder 'ada' is listed twice \(first on line 2\)"),
    ("folder,ID\nada,\n", r"roster.csv:2: expected a folder in column 'folder' and an ID in column 'ID'"),
    ("folder,ID\nada\n", r"roster.csv:2: expected a folder in column 'folder' and an ID in column 'ID'"),
    ("folder,Email\nada,a@x\n", r"roster.csv:1: expected a column named 'SIS User ID' \(--id-column\)"),
])
def test_a_bad_roster_is_one_line_naming_the_line(tmp_path, text, words):
    roster = tmp_path / "roster.csv"
    roster.write_text(text)
    with pytest.raises(LabFileError, match=words) as caught:
        read_roster(roster, "SIS User ID" if "Email" in text else None)
    assert "\n" not in str(caught.value)


def test_a_roster_that_is_not_text_or_not_there_is_one_line(tmp_path):
    roster = tmp_path / "roster.csv"
    roster.write_bytes(b"folder,ID\nada,\xff\n")
    with pytest.raises(LabFileError, match="roster.csv:2: expected UTF-8 text"):
        read_roster(roster, None)
    with pytest.raises(LabError, match="cannot read it: No such file or directory"):
        read_roster(tmp_path / "missing.csv", None)


def test_the_report_and_junit_per_student(tmp_path):
    out = tmp_path / "grades"
    write_all(class_rows(), out, "upper", None, None)
    report = (out / "students/2-b_a_/report.html").read_text(encoding="utf-8")
    assert report.startswith("<!DOCTYPE html>") and "upper (b\\xe9a\\xff): 2 of 3 points" in report
    assert "got &#x27;again\\n&#x27;\\x1b[2J" in report and "not copied: pipe: a named pipe" in report
    assert "never ready: host &#x27;server&#x27; exited" in (out / "students/3-_cal_jr/report.html").read_text()
    suite = ET.parse(out / "students/2-b_a_/junit.xml").getroot().find("testsuite")
    assert (suite.get("name"), suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("upper", "2", "1", "0")
    properties = {p.get("name"): p.get("value") for p in suite.find("properties")}
    assert properties == {"score": "2", "points": "3", "student": "b\\xe9a\\xff", "number": "2"}
    failure = suite.findall("testcase")[1].find("failure")
    assert failure.get("message") == "expected 'AGAIN\\n', got 'again\\n'\\x1b[2J"
    never = ET.parse(out / "students/3-_cal_jr/junit.xml").getroot().find("testsuite")
    assert (never.get("tests"), never.get("errors")) == ("1", "1")
    assert never.find("testcase/error").get("message") == "never ready: host 'server' exited with code 1"


def test_gradescope_results(tmp_path):
    out = tmp_path / "grades"
    write_all(class_rows(), out, "upper", None, None)
    bea = json.loads((out / "students/2-b_a_/gradescope/results.json").read_bytes().decode("utf-8"))
    assert bea["score"] == 2 and bea["execution_time"] == 4 and bea["output"] == "not copied: pipe: a named pipe"
    assert [{key: test[key] for key in ("name", "score", "max_score", "status")} for test in bea["tests"]] == [
        {"name": "upper case", "score": 2.0, "max_score": 2.0, "status": "passed"},
        {"name": "again", "score": 0.0, "max_score": 1.0, "status": "failed"}]
    assert bea["tests"][1]["output"] == ("student → server:9000 tcp: expected 'AGAIN\\n', got 'again\\n'\\x1b[2J "
                                         "(hint: upper)\nthe server saw: from 10.0.0.2:4000, 6 bytes in, 6 out: "
                                         "'hello\\n'")
    cal = json.loads((out / "students/3-_cal_jr/gradescope/results.json").read_text())
    assert cal["score"] == 0 and cal["tests"] == [
        {"name": "the lab runs", "score": 0.0, "max_score": 3.0, "status": "failed",
         "output": "never ready: host 'server' exited with code 1", "output_format": "text"}]


def test_prairielearn_results(tmp_path):
    out = tmp_path / "grades"
    write_all(class_rows(), out, "upper", None, None)
    bea = json.loads((out / "students/2-b_a_/prairielearn/results.json").read_text())
    assert bea["gradable"] is True and bea["score"] == pytest.approx(2 / 3) and bea["message"] == "2 of 3 points"
    assert [{key: test[key] for key in ("name", "points", "max_points", "message")} for test in bea["tests"]] == [
        {"name": "upper case", "points": 2.0, "max_points": 2.0, "message": "passed"},
        {"name": "again", "points": 0.0, "max_points": 1.0,
         "message": "expected 'AGAIN\\n', got 'again\\n'\\x1b[2J (hint: upper)"}]
    assert bea["tests"][1]["output"] == "from 10.0.0.2:4000, 6 bytes in, 6 out: 'hello\\n'"
    cal = json.loads((out / "students/3-_cal_jr/prairielearn/results.json").read_text())
    assert (cal["gradable"], cal["score"]) == (True, 0.0) and cal["message"].startswith("never ready")
    dee = json.loads((out / "students/4-_dee/prairielearn/results.json").read_text())
    assert (dee["gradable"], dee["score"], dee["message"]) == (False, 0.0, "not graded: internal error: boom")


def test_rows_are_read_back_exactly_and_malformed_ones_are_none(tmp_path):
    out = tmp_path / "grades"
    rows = class_rows()
    write_all(rows, out, "upper", None, None)
    again = previous_rows(out)
    assert set(again) == {row.student for row in rows}
    assert again[UNDECODABLE] == rows[1]   # the undecodable name, the results, the failures as tuples
    assert again[UNDECODABLE].results[1].observed == {"answer": "HELLO\n"}
    assert row_from_json(row_json(rows[3])) == rows[3]
    good = json.loads(row_json(rows[0]))
    for broken in ("", "not json", "[]", "{}", json.dumps({**good, "format": 99}), json.dumps({**good, "score": "3"}),
                   json.dumps({**good, "failures": [["only one"]]}), json.dumps({**good, "results": [{"name": 1}]}),
                   json.dumps({**good, "results": [{"name": "x"}]}), json.dumps({**good, "machines": [1]}),
                   json.dumps({**good, "passed": True}), "[" * 100000):
        assert row_from_json(broken) is None, broken[:80]
    # A malformed, linked or missing grade.json is no row: that submission is graded again.
    (out / "students/1-ada/grade.json").write_text("{broken")
    (out / "students/3-_cal_jr/grade.json").unlink()
    (out / "students/3-_cal_jr/grade.json").symlink_to(out / "students/4-_dee/grade.json")
    assert set(previous_rows(out)) == {UNDECODABLE, "../dee"}
    assert previous_rows(tmp_path / "nothing") == {}


def test_a_renumbered_class_leaves_no_stale_row_and_writes_through_no_link(tmp_path):
    out = tmp_path / "grades"
    write_all(class_rows(), out, "upper", None, None)
    (out / "students/1-ada/teacher-notes.txt").write_text("mine")
    rows = class_rows()[1:]
    for number, row in enumerate(rows, 1):
        row.number = number
    write_all(rows, out, "upper", None, None)
    assert sorted(os.listdir(out / "students")) == ["1-ada", "1-b_a_", "2-_cal_jr", "3-_dee"]
    assert os.listdir(out / "students/1-ada") == ["teacher-notes.txt"]   # what labctl did not write stays
    assert set(previous_rows(out)) == {UNDECODABLE, "=cal, jr", "../dee"}
    elsewhere = tmp_path / "elsewhere"
    elsewhere.write_text("untouched")
    (out / "students/1-b_a_/report.html").unlink()
    (out / "students/1-b_a_/report.html").symlink_to(elsewhere)
    with pytest.raises(LabError, match="is a symbolic link; labctl writes nothing through one"):
        write_all(rows, out, "upper", None, None)
    assert elsewhere.read_text() == "untouched"


def test_the_verb_takes_the_output_options(tmp_path):
    parsed = build_parser().parse_args(["grade", "class", "--out", "marks", "--id-column", "SIS User ID",
                                        "--roster", "r.csv"])
    assert (parsed.out, parsed.id_column, parsed.roster, parsed.csv, parsed.html) == \
        ("marks", "SIS User ID", "r.csv", None, None)
    assert gradebook.out_folder(None, None) == Path("grades")
    assert gradebook.out_folder(None, str(tmp_path / "g.csv")) == tmp_path   # the files stay together
    assert gradebook.out_folder("x", str(tmp_path / "g.csv")) == Path("x")


def test_a_bad_roster_stops_the_verb_before_any_student_runs(tmp_path, capsys):
    (tmp_path / "lab.yaml").write_text("name: r\nnetworks: {n: {subnet: 10.9.0.0/24}}\nhosts: {a: {networks: [n]}}\n")
    (tmp_path / "class" / "ada").mkdir(parents=True)
    (tmp_path / "roster.csv").write_text("folder\n")
    code = main(["-f", str(tmp_path / "lab.yaml"), "grade", str(tmp_path / "class"),
                 "--roster", str(tmp_path / "roster.csv"), "--out", str(tmp_path / "grades")])
    assert code == 3 and "roster.csv:1: expected a header of at least two columns" in capsys.readouterr().err
    assert not (tmp_path / "grades").exists()


def test_a_class_of_hostile_text_writes_files_that_parse(tmp_path):
    hostile = "\x1b]0;pwned\x07=cmd|' /C calc'!A0\u202e\ud800" + os.fsdecode(b"\xff")
    row = Graded(hostile, number=1, points=1, failures=[(hostile, hostile)], notes=[hostile],
                 results=[check(hostile, False, reason=hostile, hint=hostile)])
    out = tmp_path / "grades"
    for path in write_all([row], out, "upper", hostile, None):
        data = path.read_bytes()
        text = data.decode("utf-8")
        assert "\x1b" not in text and "\u202e" not in text, path
        if path.suffix == ".json":
            json.loads(text)
        elif path.suffix == ".xml":
            ET.fromstring(data)
        elif path.suffix == ".csv":
            for cells in csv.reader(io.StringIO(text, newline="")):
                assert not any(cell.startswith(("=", "+", "-", "@")) for cell in cells)
    # Found by the name exactly, even where a lone high surrogate meets an undecodable byte
    # (JSON's reader would have joined them into one character).
    again = previous_rows(out)[hostile]
    assert again.student == hostile and (again.points, again.number) == (1, 1) and len(again.results) == 1
