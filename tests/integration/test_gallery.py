"""Every example of the gallery, graded as `make test` grades a class: `labctl init` writes
it, and one `labctl grade` run takes its reference solution (which must pass every check),
its broken one (which must fail exactly the checks it lists, each with a reason) and its
forger, a cheating student's submission that prints the lines, hashes and exit codes the
checks look for, answers with canned data or connects nowhere (which must fail exactly the
checks it tries to forge, scoring 0 on each). examples/grading is graded the same way."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from labctl.engines.factory import open_engine, read_lab
from labctl.ops.gallery import gallery
from labctl.ops.grade import Graded, grade

from ..conftest import REPO
from .conftest import quiet, run_cli

EXAMPLES = sorted(name for name, example in gallery().items() if "broken/expected-failures.txt" in example.files)
EXPECTED = "expected-failures.txt"
PARALLEL = 3            # the reference, the broken one and the forger side by side
TIMEOUT = 90            # seconds each may take to come up and be checked


def test_the_gallery_holds_the_exercises_it_promises():
    assert {"client-server", "chat", "udp-reliability", "tls-mutual", "http-api", "routed"} <= set(EXAMPLES)
    assert all(f"forged/{EXPECTED}" in gallery()[name].files for name in EXAMPLES)
    listed = run_cli("init")
    assert listed.returncode == 0 and all(name in listed.stdout for name in EXAMPLES + ["campus"])


def listed(folder: Path) -> set[str]:
    return {line.strip() for line in (folder / EXPECTED).read_text().splitlines() if line.strip()}


def grade_class(lab_folder: Path, entries: dict[str, Path], class_folder: Path) -> dict[str, Graded]:
    """Grade each submission folder in `entries` (student name -> folder) in one run."""
    for student, source in entries.items():
        shutil.copytree(source, class_folder / student, ignore=shutil.ignore_patterns(EXPECTED))
    rows = grade(read_lab, lambda lab: open_engine(lab.topology), lab_folder / "lab.yaml", class_folder,
                 PARALLEL, TIMEOUT, quiet)
    return {row.student: row for row in rows}


def assert_reference_passes(row: Graded) -> None:
    assert not row.error and row.failures == [] and row.score == row.points > 0, row


def assert_fails_exactly(row: Graded, expected: set[str], reference: Graded) -> None:
    """`row` failed exactly `expected`, each with a reason, and lost exactly their points."""
    assert expected, f"{row.student} lists no check it must fail"
    assert not row.error, row.error
    assert {check for check, _reason in row.failures} == expected, row.failures
    assert all(reason for _check, reason in row.failures)
    points = {result.name: result.points for result in reference.results}
    assert all(points[check] > 0 for check in expected), f"{row.student} lists a check worth nothing"
    assert row.points == reference.points
    assert row.score == pytest.approx(row.points - sum(points[check] for check in expected)), row.failures
    assert row.score < reference.score


@pytest.mark.parametrize("name", EXAMPLES)
def test_the_reference_passes_and_the_broken_one_and_the_forger_fail_what_they_should(engine, name, tmp_path):
    folder = tmp_path / name
    written = run_cli("init", name, str(folder))
    assert written.returncode == 0, written.stderr
    assert (folder / "README.md").is_file() and (folder / "submission").is_dir()
    rows = grade_class(folder, {"reference": folder / "submission", "broken": folder / "broken",
                                "forged": folder / "forged"}, tmp_path / "class")
    assert_reference_passes(rows["reference"])
    assert_fails_exactly(rows["broken"], listed(folder / "broken"), rows["reference"])
    assert_fails_exactly(rows["forged"], listed(folder / "forged"), rows["reference"])


def test_the_grading_example_credits_its_reference_and_not_its_forger(engine, tmp_path):
    folder = tmp_path / "grading"
    shutil.copytree(REPO / "examples" / "grading", folder,
                    ignore=shutil.ignore_patterns("compose", ".labctl", "__pycache__", ".pytest_cache"))
    rows = grade_class(folder, {"reference": folder / "submission", "forged": folder / "forged"},
                       tmp_path / "class")
    assert_reference_passes(rows["reference"])
    assert_fails_exactly(rows["forged"], listed(folder / "forged"), rows["reference"])
