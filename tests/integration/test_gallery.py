"""Every example of the gallery, graded as `make test` grades a class: `labctl init` writes
it, and `labctl grade`'s machinery runs its reference solution (which must pass every check)
beside its broken one (which must fail exactly the checks it lists, each with a reason)."""

from __future__ import annotations

import shutil

import pytest

from labctl.engines.factory import open_engine, read_lab
from labctl.ops.gallery import gallery
from labctl.ops.grade import grade

from .conftest import quiet, run_cli

EXAMPLES = sorted(name for name, example in gallery().items() if "broken/expected-failures.txt" in example.files)


def test_the_gallery_holds_the_exercises_it_promises():
    assert {"client-server", "chat", "udp-reliability", "tls-mutual", "http-api", "routed"} <= set(EXAMPLES)
    listed = run_cli("init")
    assert listed.returncode == 0 and all(name in listed.stdout for name in EXAMPLES + ["campus"])


@pytest.mark.parametrize("name", EXAMPLES)
def test_the_reference_passes_and_the_broken_one_fails_what_it_should(engine, name, tmp_path):
    folder = tmp_path / name
    written = run_cli("init", name, str(folder))
    assert written.returncode == 0, written.stderr
    assert (folder / "README.md").is_file() and (folder / "submission").is_dir()
    expected = {line.strip() for line in (folder / "broken" / "expected-failures.txt").read_text().splitlines()
                if line.strip()}
    shutil.copytree(folder / "submission", tmp_path / "class" / "reference")
    shutil.copytree(folder / "broken", tmp_path / "class" / "broken",
                    ignore=shutil.ignore_patterns("expected-failures.txt"))
    rows = {row.student: row for row in grade(read_lab, lambda lab: open_engine(lab.topology), folder / "lab.yaml",
                                               tmp_path / "class", 2, 90, quiet)}
    reference, broken = rows["reference"], rows["broken"]
    assert not reference.error and reference.failures == [] and reference.score == reference.points > 0, reference
    assert not broken.error, broken.error
    assert {check for check, _reason in broken.failures} == expected, broken.failures
    assert all(reason for _check, reason in broken.failures)
    assert broken.score < reference.score
