"""Whose word a check rests on: which checks run alone, which a lab may not declare, and how
a class's folder is read as data (what is copied, what is left out and said, the digest)."""

from __future__ import annotations

import os
from pathlib import Path
import socket

import pytest

from labctl.checks.evidence import runs_alone, submission_mount
from labctl.engines.factory import read_lab
from labctl.errors import LabFileError
from labctl.ops.submissions import MAX_DEPTH, copy_tree, digest, entries

LAB = """
name: evidence
networks:
  room: {subnet: 10.77.1.0/24}
hosts:
  server:
    networks: [room]
    files: ["./submission/server.py:/exercise/server.py"]
    command: python3 -u /exercise/server.py
  reference:
    networks: [room]
    files: ["./reference.py:/exercise/reference.py"]
    command: python3 -u /exercise/reference.py
  echo: {networks: [room], services: [{tcp-echo: {port: 7}}]}
  client:
    networks: [room]
    files: ["./submission/client.py:/exercise/client.py"]
  teacher:
    networks: [room]
    files: ["./checker.py:/exercise/checker.py"]
checks:
"""


@pytest.fixture
def lab(tmp_path):
    (tmp_path / "submission").mkdir()
    for name in ("submission/server.py", "submission/client.py", "reference.py", "checker.py"):
        (tmp_path / name).write_text("")

    def load(checks: str):
        (tmp_path / "lab.yaml").write_text(LAB + checks)
        return read_lab(tmp_path / "lab.yaml")
    return load


def test_hosts_that_mount_the_submission_run_the_students_code(lab):
    topology = lab("").topology
    assert submission_mount(topology, topology.hosts["server"]) == "./submission/server.py"
    assert submission_mount(topology, topology.hosts["client"]) == "./submission/client.py"
    assert submission_mount(topology, topology.hosts["teacher"]) is None
    assert submission_mount(topology, topology.hosts["reference"]) is None


def test_a_students_client_judged_only_by_itself_is_refused(lab):
    with pytest.raises(LabFileError) as refused:
        lab('  - {name: forged, from: client, to: server:9000, run: "python3 /exercise/client.py"}\n')
    message = str(refused.value)
    assert "checks[0].server" in message and "only from the student's own code" in message
    assert "'client' runs ./submission/client.py" in message
    with pytest.raises(LabFileError, match="only from the student's own code"):
        lab('  - {name: silent, from: client, to: reference:9000, run: "python3 /exercise/client.py",'
            ' server: false}\n')
    with pytest.raises(LabFileError, match="only from the student's own code"):
        lab('  - {name: alone, from: client, run: "python3 /exercise/client.py"}\n')


def test_a_students_client_proven_by_a_reference_server_or_a_built_in_one_is_taken(lab):
    checks = lab('  - {name: by the reference, from: client, to: reference:9000, run: "python3 /exercise/client.py",'
                 ' server: {log: "got it from {client}"}}\n'
                 '  - {name: by the echo, from: client, to: echo:7, run: "python3 /exercise/client.py",'
                 ' server: {received: "hello"}}\n'
                 '  - {name: the teacher, from: teacher, to: server:9000, run: "python3 /exercise/checker.py"}\n').checks
    assert [check.name for check in checks] == ["by the reference", "by the echo", "the teacher"]


def test_a_students_client_against_a_built_in_server_must_say_what_arrived(lab):
    with pytest.raises(LabFileError, match=r"checks\[0\]\.server: .*proven by what that server received"):
        lab('  - {name: bare, from: client, to: echo:7, run: "python3 /exercise/client.py"}\n')
    loaded = lab('  - {name: said, from: client, to: echo:7, run: "python3 /exercise/client.py",'
                 ' server: {received: "hello"}}\n')
    from labctl.checks.judge import wants_server_side
    # Its server side is read though the check is a command: the student's word is not enough.
    assert wants_server_side(loaded.topology, loaded.checks[0])


def test_a_command_never_runs_beside_built_in_servers(lab):
    with pytest.raises(LabFileError, match=r"checks\[0\]\.from: 'echo' runs built-in services"):
        lab('  - {name: beside, from: echo, run: "true"}\n')


def test_checks_against_the_labs_own_programs_run_alone_unless_they_may_overlap(lab):
    loaded = lab('  - {name: a, from: teacher, to: server:9000, tcp: {send: "x", expect: "X"}}\n'
                 '  - {name: b, from: teacher, to: echo:7, tcp: {send: "x", expect: "x"}}\n'
                 '  - {name: c, from: teacher, to: server:9000, overlap: true, tcp: {send: "x", expect: "X"}}\n')
    alone = {check.name: runs_alone(loaded.topology, check) for check in loaded.checks}
    assert alone == {"a": True, "b": False, "c": False}
    with pytest.raises(LabFileError, match="overlap"):
        lab('  - {name: a, from: teacher, to: server:9000, overlap: maybe, tcp: {send: "x"}}\n')


def _deep(folder, depth):
    descriptor = os.open(folder, os.O_RDONLY)
    for _ in range(depth):
        os.mkdir("d", dir_fd=descriptor)
        inner = os.open("d", os.O_RDONLY, dir_fd=descriptor)
        os.close(descriptor)
        descriptor = inner
    os.close(descriptor)


def test_a_copy_takes_files_and_folders_and_says_what_it_left_out(tmp_path):
    student = tmp_path / "student"
    (student / "src").mkdir(parents=True)
    (student / "src" / "server.py").write_text("print('hi')\n")
    (student / "run.sh").write_text("#!/bin/sh\n")
    os.chmod(student / "run.sh", 0o700)
    os.mkfifo(student / "pipe")
    listening = socket.socket(socket.AF_UNIX)
    listening.bind(str(student / "socket"))
    (student / "escape").symlink_to("/etc")
    (student / "passwd").symlink_to("/etc/passwd")
    with open(student / "sparse.bin", "wb") as sparse:
        sparse.truncate(1 << 30)
    _deep(student, MAX_DEPTH + 5)
    copied = copy_tree(student, tmp_path / "copy")
    listening.close()
    assert (tmp_path / "copy" / "src" / "server.py").read_text() == "print('hi')\n"
    assert os.stat(tmp_path / "copy" / "run.sh").st_mode & 0o111
    for name in ("pipe", "socket", "escape", "passwd", "sparse.bin"):
        assert not os.path.lexists(tmp_path / "copy" / name), name
    said = "; ".join(copied.left_out)
    for what in ("pipe: a named pipe", "socket: a socket", "escape: a symbolic link", "sparse.bin: 1024 MiB",
                 f"deeper than {MAX_DEPTH} folders"):
        assert what in said, said


def test_the_class_folder_lists_folders_and_says_why_the_rest_is_not_graded(tmp_path):
    for name in ("ada", "=1+2", os.fsdecode(b"b\xff")):
        (tmp_path / name).mkdir()
    (tmp_path / "linked").symlink_to(tmp_path / "ada")
    (tmp_path / "notes.txt").write_text("")
    os.mkfifo(tmp_path / "pipe")
    (tmp_path / ".hidden").mkdir()
    found = dict(entries(tmp_path))
    assert found["ada"] is None and found["=1+2"] is None and found[os.fsdecode(b"b\xff")] is None
    assert "symbolic link" in found["linked"] and "a file" in found["notes.txt"] and "named pipe" in found["pipe"]
    assert ".hidden" not in found


def test_the_digest_changes_with_content_names_and_modes_only(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.py").write_text("one")
    first = digest(tmp_path / "a")
    assert digest(tmp_path / "a") == first
    (tmp_path / "a" / "x.py").write_text("two")
    assert digest(tmp_path / "a") != first
    second = digest(tmp_path / "a")
    os.chmod(tmp_path / "a" / "x.py", 0o755)
    assert digest(tmp_path / "a") != second


def test_an_instance_holds_the_labs_files_and_one_students_nothing_else(tmp_path):
    from labctl.ops.grade import _instance
    lab = tmp_path / "lab"
    (lab / "class" / "ada").mkdir(parents=True)
    (lab / "class" / "ada" / "server.py").write_text("ada's")
    (lab / "class" / "bea").mkdir()
    (lab / "class" / "bea" / "server.py").write_text("bea's")
    (lab / "grades").mkdir()
    (lab / "grades" / "grades.csv").write_text("last run")
    (lab / "submission").mkdir()
    (lab / "submission" / "server.py").write_text("the reference")
    (lab / "compose").mkdir()
    (lab / "checker.py").write_text("the teacher's")
    (lab / "exam.yaml").write_text("name: exam")
    (tmp_path / "scratch").mkdir()
    lab_file, left_out = _instance(lab / "exam.yaml", lab / "class" / "ada", tmp_path / "scratch",
                                   {lab / "class", lab / "grades"})
    assert lab_file == tmp_path / "scratch" / "lab" / "exam.yaml" and not left_out
    held = sorted(str(path.relative_to(tmp_path / "scratch" / "lab")) for path in
                  (tmp_path / "scratch" / "lab").rglob("*"))
    assert held == ["checker.py", "exam.yaml", "submission", "submission/server.py"]
    assert (tmp_path / "scratch" / "lab" / "submission" / "server.py").read_text() == "ada's"


def test_a_host_running_the_students_code_has_no_raw_sockets_unless_the_lab_says(lab, tmp_path):
    import yaml

    from labctl.render.lab import render_lab
    loaded = lab("")
    services = yaml.safe_load(render_lab(loaded.topology).read_text())["services"]
    assert services["server"]["cap_drop"] == ["NET_RAW"] and services["client"]["cap_drop"] == ["NET_RAW"]
    assert "cap_drop" not in services["teacher"] and "cap_drop" not in services["reference"]
    text = (tmp_path / "lab.yaml").read_text().replace(
        "    command: python3 -u /exercise/server.py\n", "    command: python3 -u /exercise/server.py\n    raw_sockets: true\n")
    (tmp_path / "lab.yaml").write_text(text)
    services = yaml.safe_load(render_lab(read_lab(tmp_path / "lab.yaml").topology).read_text())["services"]
    assert "cap_drop" not in services["server"]


class _Says:
    """An engine whose helpers print `text`: what a counter read or a transcript could hold
    if anything but labctl's own code wrote it. It must cost a check, never the run."""

    def __init__(self, text: bytes):
        self.text = text

    def run_in_namespace(self, topology, host, image, argv, cap_add=None, files=None):
        from labctl.engines.base import ExecResult
        return ExecResult(0, self.text, b"")

    def logs(self, topology, host, **options):
        yield self.text


@pytest.mark.parametrize("text", [b"Icmp: InEchos\nIcmp: lots\n", b"Icmp: InEchos\nIcmp:\n", b"\xff\x00",
                                  b"Icmp6InEchos x\n", b""])
def test_a_counter_that_is_not_a_number_is_a_reason_never_a_crash(text):
    from labctl.ops.checks import _counters
    topology = read_lab(_repo_lab()).topology
    read = _counters(topology, _Says(text), "image", {("web", ("Icmp", "InEchos")), ("web", ("Icmp6", "InEchos"))})
    assert all(isinstance(value, str) for value in read.values()), read


def test_transcript_lines_in_another_shape_are_data_never_evidence():
    from labctl.ops.checks import read_transcript
    topology = read_lab(_repo_lab()).topology
    lines = b"\n".join([b'transcript {"time": "soon", "peer": "10.0.0.1"}', b'transcript [1, 2]',
                        b'transcript {"time": 5, "peer": ["x"]}', b'transcript {"time": true}',
                        b'transcript not json', b'transcript {"time": 7, "peer": "10.0.0.2", "port": 7}'])
    assert read_transcript(topology, _Says(lines), "web") == [{"time": 7, "peer": "10.0.0.2", "port": 7}]


def _repo_lab():
    from ..conftest import REPO
    return REPO / "lab.yaml"


def test_an_unchanged_submission_keeps_its_row_unless_forced_and_only_grades_those_named(tmp_path):
    """The run's bookkeeping without an engine: a lab that cannot be read with a student's
    files costs that row, and a row whose content has not changed is not graded again."""
    from labctl.errors import LabError
    from labctl.ops.grade import grade
    lab = tmp_path / "lab"
    (lab / "submission").mkdir(parents=True)
    (lab / "exam.yaml").write_text("name: exam\n")
    room = tmp_path / "class"
    for name in ("ada", "bea"):
        (room / name).mkdir(parents=True)
        (room / name / "server.py").write_text(name)
    read: list[Path] = []

    def reading(path):
        read.append(path)
        raise LabError("no engine here")

    def run(previous=None, **options):
        read.clear()
        return {row.student: row for row in grade(reading, None, lab / "exam.yaml", room, 1, 10.0,
                                                   lambda message: None, previous=previous, **options)}
    first = run()
    assert all(row.error.startswith("the lab could not be read") and row.digest for row in first.values())
    assert len(read) == 4   # each submission, and the lab alone for the points of a row that never ran
    again = run(previous=first)
    assert not read and all(row.reused for row in again.values())
    (room / "bea" / "server.py").write_text("bea, changed")
    changed = run(previous=first)
    assert changed["ada"].reused and not changed["bea"].reused
    assert all(not row.reused for row in run(previous=first, force=True).values())
    only = run(previous=first, only={"ada"}, force=True)
    assert not only["ada"].reused and only["bea"].reused
    with pytest.raises(LabError, match="no submission named 'cal'"):
        run(previous=first, only={"cal"})
