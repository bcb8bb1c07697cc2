"""Grading a class without an engine: moving a lab to subnets of its own for each parallel
instance, the CSV and HTML a grade writes, and the gallery `labctl init` copies from."""

from __future__ import annotations

import csv
import io

import pytest

from labctl.cli.gradebook import csv_text, html_page
from labctl.engines.factory import read_lab
from labctl.errors import LabError, LabFileError
from labctl.model.addressing import computed_routes, relocate
from labctl.ops.gallery import gallery, init
from labctl.ops.grade import Graded

from ..conftest import REPO


def test_a_relocated_lab_keeps_its_shape_on_subnets_of_its_own():
    first, second = read_lab(REPO / "lab.yaml").topology, read_lab(REPO / "lab.yaml").topology
    relocate(second, 2)
    for name, network in first.networks.items():
        moved = second.networks[name]
        assert str(moved.subnet) == str(network.subnet).replace("10.10.", "10.24.")
        assert str(moved.subnet6) == str(network.subnet6).replace("fd00:10:", "fd00:12:")
        assert not moved.subnet.overlaps(network.subnet) and not moved.subnet6.overlaps(network.subnet6)
    for name, host in second.hosts.items():
        for attachment in host.attachments:
            assert all(second.networks[attachment.network].holds(a) for a in attachment.addresses)
            assert [int(a) & 0xFF for a in attachment.addresses] == \
                [int(a) & 0xFF for a in first.hosts[name].attachment(attachment.network).addresses]
    routes = computed_routes(second, second.hosts["alice"])
    assert {str(r.destination) for r in routes} == {"10.24.2.0/24", "fd00:12:2::/64"}


def test_relocating_refuses_addresses_it_cannot_move(write_lab):
    topology = read_lab(write_lab("""
        name: pub
        networks: {n: {subnet: 192.168.7.0/24}}
        hosts: {a: {networks: [n]}}
    """)).topology
    with pytest.raises(LabFileError, match=r"grade --parallel moves addresses within 10\.0\.0\.0/8; 192\.168\.7\.0"):
        relocate(topology, 1)


def test_the_csv_and_the_page_hold_one_row_per_student_quoted_and_escaped():
    rows = [Graded("ada", score=3, points=3, passed=2, failed=0, seconds=3.5),
            Graded("bob, jr", score=1, points=3, passed=1, failed=1, seconds=4.0,
                   failures=[("upper case", "expected 'HELLO', got \"hi\" (hint: upper)")]),
            Graded("<cal>", score=0, points=3, error="never ready: host 'server' exited")]
    parsed = list(csv.DictReader(io.StringIO(csv_text(rows))))
    assert [row["student"] for row in parsed] == ["ada", "bob, jr", "<cal>"]
    assert parsed[1]["failed checks"] == "upper case: expected 'HELLO', got \"hi\" (hint: upper)"
    assert parsed[2]["score"] == "0" and parsed[2]["failed checks"].startswith("never ready")
    page = html_page(rows, "lab")
    assert "3 submissions, mean score 1.3" in page and "&lt;cal&gt;" in page and "<cal>" not in page
    assert "<b>upper case</b>" in page and page.count("<tr>") == 4


def test_the_gallery_lists_the_default_lab_and_init_writes_a_folder_of_its_own(tmp_path):
    examples = gallery()
    assert "campus" in examples and all(example.summary for example in examples.values())
    written = init("campus", tmp_path / "mine")
    assert [path.name for path in written] == ["lab.yaml", "labctl.schema.json", ".gitignore"]
    assert ".labctl/" in (tmp_path / "mine" / ".gitignore").read_text().splitlines()
    assert (tmp_path / "mine" / "lab.yaml").read_text() == (REPO / "lab.yaml").read_text()
    with pytest.raises(LabError, match="already exists and is not an empty folder"):
        init("campus", tmp_path / "mine")
    with pytest.raises(LabError, match="no example 'nope' in the gallery; examples: campus"):
        init("nope", tmp_path / "other")
