"""What `labctl grade` writes, and the table it prints. In the output folder OUT:

    OUT/grades.csv       a row per student: score, points, the failed checks and why
    OUT/grades.html      the same as a page, each student linked to their report
    OUT/gradebook.csv    the ID column the teacher names and the score, for Canvas or Moodle
    OUT/students/<n>-<name>/
        report.html                the page `labctl check --report FILE.html` writes
        junit.xml                  JUnit, one testcase per check
        gradescope/results.json    Gradescope's autograder results
        prairielearn/results.json  PrairieLearn's external grader results
        grade.json                 the row itself, which the next run reads back to skip
                                   a submission that has not changed

A student's folder name is data: every file shows it escaped (labctl.text), and the
folder of their files is named by their number and a sanitised name, written through no
symbolic link (labctl.files)."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import stat
from dataclasses import MISSING, asdict, fields
from pathlib import Path
from typing import Any, Callable
from urllib.parse import quote

from ..checks.result import CheckResult, points, reason_with_hint, server_saw
from ..errors import LabError, LabFileError
from ..files import remove_file, write_file
from ..ops.grade import Graded
from ..text import csv_rows, cut, file_part, html, json_safe, one_line, visible
from .formats import html as html_report, junit
from .views import columns

FIELDS = ["student", "score", "points", "passed", "failed", "seconds", "failed checks", "machines"]
CSV, HTML, GRADEBOOK = "grades.csv", "grades.html", "gradebook.csv"
STUDENTS = "students"
REPORT, JUNIT, ROW = "report.html", "junit.xml", "grade.json"
GRADESCOPE, PRAIRIELEARN = Path("gradescope", "results.json"), Path("prairielearn", "results.json")
PER_STUDENT = (REPORT, JUNIT, ROW, str(GRADESCOPE), str(PRAIRIELEARN))
DEFAULT_OUT = "grades"
DEFAULT_ID = "student"
NAME_PART = 40                   # characters of a student's name in their folder's name
MAX_ROW = 16 * 1024 * 1024       # a grade.json longer than this is not read back
MAX_ROSTER = 16 * 1024 * 1024
# What a check that never ran is called where a format needs one per check.
NOT_RUN = "the lab runs"
ROW_FORMAT = 1


def out_folder(out: str | None, csv_file: str | None) -> Path:
    """The output folder: --out, else the folder of --csv (the files stay together), else grades/."""
    if out:
        return Path(out)
    return Path(csv_file).parent if csv_file else Path(DEFAULT_OUT)


# The teacher's files.

def _row(graded: Graded) -> list[object]:
    return [graded.student, f"{graded.score:g}", f"{graded.points:g}", graded.passed, graded.failed,
            f"{graded.seconds:.1f}", graded.summary, " ".join(graded.machines)]


def csv_text(rows: list[Graded]) -> str:
    """grades.csv: every cell one line, controls written out, never a formula."""
    return csv_rows([list(FIELDS), *(_row(graded) for graded in rows)])


def table(rows: list[Graded]) -> str:
    return columns([("STUDENT", "SCORE", "TIME", "FAILED")] + [
        (g.student, f"{g.score:g}/{g.points:g}", f"{g.seconds:.0f}s", cut(one_line(g.summary), 100)) for g in rows])


def html_page(rows: list[Graded], lab: str, links: dict[int, str] | None = None) -> str:
    """grades.html; `links`: a submission's number -> the address of its report."""
    def student(g: Graded) -> str:
        link = (links or {}).get(g.number)
        return f'<a href="{html(link)}">{html(g.student)}</a>' if link else html(g.student)
    body = "".join(
        f"<tr><td>{student(g)}</td><td>{g.score:g}/{g.points:g}</td><td>{g.seconds:.1f}s</td><td>"
        + ("<br>".join(f"<b>{html(name)}</b>: {html(reason)}" for name, reason in g.failures)
           or html(g.error) or "all passed") + "".join(f"<br>{html(note)}" for note in g.notes) + "</td></tr>"
        for g in rows)
    mean = sum(g.score for g in rows) / len(rows) if rows else 0
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html(lab)}: grades</title>'
            "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
            "td,th{border:1px solid #ccc;padding:.3em .5em;text-align:left;vertical-align:top}</style></head>"
            f"<body><h1>{html(lab)}: {len(rows)} submissions, mean score {mean:.1f}</h1><table><thead><tr>"
            "<th>student</th><th>score</th><th>time</th><th>failed checks, and why</th></tr></thead>"
            f"<tbody>{body}</tbody></table></body></html>\n")


# The gradebook a learning platform imports.

def read_roster(path: Path, id_column: str | None) -> tuple[str, dict[str, str]]:
    """A CSV mapping submission folders to IDs: a header, then a row per student. The
    folder is the column named `folder` (else the first); the ID the column named
    `id_column` (else the first other one). Returns (the ID column's name, folder -> ID)."""
    where = str(path)
    try:
        size = os.stat(path).st_size
        if size > MAX_ROSTER:
            raise LabFileError(where, None, "", f"expected a roster of at most {MAX_ROSTER >> 20} MiB, "
                                                f"got {size >> 20} MiB")
        data = path.read_bytes()
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise LabFileError(where, line, "", "expected UTF-8 text") from None
    except OSError as exc:
        raise LabError(f"--roster {one_line(where, 300)}: cannot read it: {exc.strerror}") from None
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = [cell.strip() for cell in next(reader, [])]
        if len(header) < 2:
            raise LabFileError(where, 1, "", "expected a header of at least two columns: the folder "
                                             "(named 'folder', or the first) and the ID")
        lowered = [cell.lower() for cell in header]
        folder_at = lowered.index("folder") if "folder" in lowered else 0
        if id_column:
            if id_column not in header:
                raise LabFileError(where, 1, "", f"expected a column named {id_column!r} (--id-column); "
                                                 f"the header has {', '.join(map(repr, header))}")
            id_at = header.index(id_column)
        else:
            id_at = next(index for index in range(len(header)) if index != folder_at)
        mapping: dict[str, str] = {}
        first: dict[str, int] = {}
        for row in reader:
            if not any(cell.strip() for cell in row):
                continue
            line = reader.line_num
            if len(row) <= max(folder_at, id_at) or not row[folder_at].strip() or not row[id_at].strip():
                raise LabFileError(where, line, "", f"expected a folder in column {header[folder_at]!r} and "
                                                    f"an ID in column {header[id_at]!r}")
            folder = row[folder_at].strip()
            if folder in mapping:
                raise LabFileError(where, line, "", f"folder {folder!r} is listed twice (first on line "
                                                    f"{first[folder]})")
            mapping[folder], first[folder] = row[id_at].strip(), line
    except csv.Error as exc:
        raise LabFileError(where, reader.line_num, "", f"expected CSV: {exc}") from None
    return id_column or header[id_at], mapping


def gradebook_rows(rows: list[Graded], lab: str, id_column: str | None,
                   roster: tuple[str, dict[str, str]] | None) -> tuple[list[list[object]], list[str]]:
    """The gradebook's rows, header first, and the submissions it leaves out (not in the
    roster). A row the run itself failed (not the student's doing) has no score: importing
    it changes nothing, where a 0 would."""
    name = id_column or (roster[0] if roster else DEFAULT_ID)
    table: list[list[object]] = [[name, f"{lab} (points)"]]
    missing = []
    for graded in rows:
        ident = graded.student
        if roster is not None:
            found = roster[1].get(graded.student, roster[1].get(graded.student.strip()))
            if found is None:
                missing.append(graded.student)
                continue
            ident = found
        table.append([ident, "" if graded.trouble else points(graded.score)])
    return table, missing


# Each student's files.

def student_folder(graded: Graded) -> str:
    """The folder of a student's files: their number, then their name made safe for a file
    name (no separator, no leading dot, no control, at most NAME_PART characters)."""
    return f"{graded.number}-{file_part(graded.student, NAME_PART)}"


def _note(graded: Graded) -> str:
    return "\n".join(filter(None, [graded.error, *graded.notes]))


def report_page(graded: Graded, lab: str) -> str:
    return html_report.render(graded.results, graded.seconds, f"{lab} ({graded.student})", note=_note(graded))


def junit_text(graded: Graded, lab: str) -> str:
    return junit.render(graded.results, graded.seconds, lab, error=graded.error if not graded.results else "",
                        properties={"student": graded.student, "number": str(graded.number)})


def _output(result: CheckResult) -> str:
    """What a platform shows under a check: where it ran, why it failed, what the server saw."""
    lines = [f"{result.route} {result.protocol}: " + ("passed" if result.passed else reason_with_hint(result))]
    saw = server_saw(result)
    if saw:
        lines.append("the server saw: " + "; ".join(saw))
    return visible("\n".join(lines), keep="\n")


def gradescope(graded: Graded) -> dict[str, Any]:
    """Gradescope's results.json: `score`, and `tests`, each with `name`, `score`,
    `max_score`, `status` (passed or failed) and `output`."""
    tests = [{"name": one_line(result.name), "score": result.scored, "max_score": result.points,
              "status": "passed" if result.passed else "failed", "output": _output(result), "output_format": "text"}
             for result in graded.results]
    if not graded.results:
        tests = [{"name": NOT_RUN, "score": 0.0, "max_score": graded.points, "status": "failed",
                  "output": visible(graded.error or "no check ran", keep="\n"), "output_format": "text"}]
    return {"score": graded.score if graded.results else 0.0, "execution_time": round(graded.seconds),
            "output": visible(_note(graded), keep="\n"), "output_format": "text", "tests": tests}


def prairielearn(graded: Graded) -> dict[str, Any]:
    """PrairieLearn's external grader results.json: `gradable`, `score` (a fraction, 0 to 1),
    `message`, `output`, and `tests`, each with `name`, `points`, `max_points`, `message`
    and `output`. A row the run itself failed is not gradable: the student loses nothing."""
    tests = [{"name": one_line(result.name), "description": one_line(f"{result.route} {result.protocol}"),
              "points": result.scored, "max_points": result.points,
              "message": one_line("passed" if result.passed else reason_with_hint(result)),
              "output": visible("\n".join(server_saw(result)), keep="\n")}
             for result in graded.results]
    if not graded.results:
        tests = [{"name": NOT_RUN, "points": 0.0, "max_points": graded.points,
                  "message": one_line(graded.error or "no check ran"), "output": ""}]
    fraction = graded.score / graded.points if graded.points > 0 and graded.results else 0.0
    return {"gradable": not graded.trouble, "score": min(1.0, max(0.0, fraction)),
            "message": one_line(graded.trouble or graded.error or f"{graded.score:g} of {graded.points:g} points"),
            "output": visible(_note(graded), keep="\n"), "tests": tests}


def _json(value: Any) -> str:
    """JSON in UTF-8 as people read it; json_safe has written out any lone surrogate."""
    return json.dumps(json_safe(value), ensure_ascii=False, indent=2, default=str) + "\n"


def row_json(graded: Graded) -> str:
    """grade.json: the row (ASCII, so a name's undecodable bytes survive as escapes), and the
    student's name once more as hex, the key the next run looks it up by: JSON's reader
    would join two lone surrogates that happen to make a pair."""
    name = graded.student.encode("utf-8", "surrogatepass").hex()
    return json.dumps({"format": ROW_FORMAT, "name_hex": name, **asdict(graded)}, ensure_ascii=True, indent=1,
                      default=str) + "\n"


# Reading rows back.

_RESULT_TYPES: dict[str, tuple[type, ...]] = {
    "name": (str,), "source": (str,), "target": (str, type(None)), "port": (int, type(None)), "protocol": (str,),
    "passed": (bool,), "elapsed_ms": (int, float), "reason": (str,), "observed": (dict,), "server": (list,),
    "attempts": (int,), "hint": (str, type(None)), "points": (int, float)}


def _result(value: Any) -> CheckResult:
    if not isinstance(value, dict):
        raise ValueError("a result is not an object")
    known = {item.name for item in fields(CheckResult)}
    given = {key: item for key, item in value.items() if key in known}
    for key, item in given.items():
        kinds = _RESULT_TYPES.get(key, (object,))
        if not isinstance(item, kinds) or (isinstance(item, bool) and bool not in kinds):
            raise ValueError(f"{key} has the wrong type")
    if not all(isinstance(entry, dict) for entry in given.get("server", [])):
        raise ValueError("server holds something other than objects")
    return CheckResult(**given)


def _field(name: str, default: Any, value: Any) -> Any:
    """`value` as the row's field `name`, whose default is `default`; ValueError if it cannot be."""
    if name == "failures":
        if not isinstance(value, list) or not all(
                isinstance(pair, list) and len(pair) == 2 and all(isinstance(part, str) for part in pair)
                for pair in value):
            raise ValueError("failures")
        return [tuple(pair) for pair in value]
    if name == "results":
        if not isinstance(value, list):
            raise ValueError("results")
        return [_result(item) for item in value]
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ValueError(name)
    elif isinstance(default, (int, float)):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(name)
        return type(default)(value)
    elif isinstance(default, list):
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise ValueError(name)
    elif default is not None and not isinstance(value, type(default)):
        raise ValueError(name)
    return value


def row_from_json(text: str) -> Graded | None:
    """The row grade.json holds, or None when it holds none (not JSON, another format, a
    field of the wrong type)."""
    try:
        data = json.loads(text)
        if not isinstance(data, dict) or data.get("format") != ROW_FORMAT or not isinstance(data.get("name_hex"), str):
            return None
        data["student"] = bytes.fromhex(data["name_hex"]).decode("utf-8", "surrogatepass")
        values: dict[str, Any] = {}
        for item in fields(Graded):
            if item.name in data and item.init:
                default = item.default_factory() if item.default_factory is not MISSING else item.default
                values[item.name] = _field(item.name, None if default is MISSING else default, data[item.name])
        return Graded(**values)
    except (ValueError, TypeError, RecursionError):
        return None



def _read_bounded(path: Path, limit: int) -> str | None:
    """A regular file's text, read without following a link, or None (missing, a link,
    anything else, longer than `limit`, not UTF-8)."""
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(descriptor).st_mode):
            return None
        data = os.read(descriptor, limit + 1)
        return data.decode("utf-8") if len(data) <= limit else None
    except (OSError, UnicodeDecodeError):
        return None
    finally:
        os.close(descriptor)


def previous_rows(out: Path) -> dict[str, Graded]:
    """The rows an earlier run wrote into `out`, by student (the submission folder's name).
    A missing, malformed or linked file is no row: that submission is graded again."""
    try:
        with os.scandir(out / STUDENTS) as listing:
            folders = sorted(entry.name for entry in listing if entry.is_dir(follow_symlinks=False))
    except OSError:
        return {}
    rows = {}
    for name in folders:
        text = _read_bounded(out / STUDENTS / name / ROW, MAX_ROW)
        row = row_from_json(text) if text is not None else None
        if row is not None:
            rows[row.student] = row
    return rows


# Writing it all.

def _write(root: Path, path: Path, text: str, written: list[Path]) -> None:
    # The texts hold no lone surrogate; were one to slip through, it is written out, not a crash.
    written.append(write_file(root, path, text.encode("utf-8", errors="backslashreplace")))


_STUDENT_FOLDER = re.compile(r"\d+-")


def _remove_stale(out: Path, keep: set[str]) -> None:
    """Remove what an earlier run wrote for submissions this run numbered differently or no
    longer has (their grade.json would otherwise be read back), and only that."""
    try:
        with os.scandir(out / STUDENTS) as listing:
            stale = [entry.name for entry in listing if entry.is_dir(follow_symlinks=False)
                     and _STUDENT_FOLDER.match(entry.name) and entry.name not in keep]
    except OSError:
        return
    for name in stale:
        folder = out / STUDENTS / name
        for file in PER_STUDENT:
            remove_file(out, folder / file)
        for empty in (folder / GRADESCOPE.parent, folder / PRAIRIELEARN.parent, folder):
            try:
                os.rmdir(empty)
            except OSError:
                pass   # it holds something labctl did not write: left as it is


def write_all(rows: list[Graded], out: Path, lab_name: str, id_column: str | None, roster: Path | None,
              csv_file: Path | None = None, html_file: Path | None = None,
              say: Callable[[str], None] | None = None) -> list[Path]:
    """Everything `labctl grade` writes (see the module's text), into `out`; grades.csv and
    grades.html at `csv_file` and `html_file` where given. Returns the files written."""
    mapping = read_roster(roster, id_column) if roster is not None else None
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    names = {graded.number: student_folder(graded) for graded in rows}
    for graded in rows:
        folder = out / STUDENTS / names[graded.number]
        _write(out, folder / REPORT, report_page(graded, lab_name), written)
        _write(out, folder / JUNIT, junit_text(graded, lab_name), written)
        _write(out, folder / GRADESCOPE, _json(gradescope(graded)), written)
        _write(out, folder / PRAIRIELEARN, _json(prairielearn(graded)), written)
        _write(out, folder / ROW, row_json(graded), written)
    _remove_stale(out, set(names.values()))
    csv_path, html_path = csv_file or out / CSV, html_file or out / HTML
    links = {number: quote(os.path.relpath(out / STUDENTS / name / REPORT, os.path.abspath(html_path.parent)))
             for number, name in names.items()}
    _write(csv_path.parent, csv_path, csv_text(rows), written)
    _write(html_path.parent, html_path, html_page(rows, lab_name, links), written)
    book, missing = gradebook_rows(rows, lab_name, id_column, mapping)
    _write(out, out / GRADEBOOK, csv_rows(book), written)
    if missing and say is not None:
        say(f"{GRADEBOOK} leaves out {len(missing)} submissions the roster does not name: "
            + ", ".join(one_line(name, 60) for name in missing[:5]) + (", ..." if len(missing) > 5 else ""))
    return written
