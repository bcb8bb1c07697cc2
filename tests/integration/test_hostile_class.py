"""`labctl grade` on a hostile class, on the real engine: folders holding a named pipe, a
socket, a sparse 1 GiB file and folders 2,000 deep; a submission that is a symbolic link;
names with quotes, commas, colons, spaces, a leading `=` and bytes that are not UTF-8;
programs that ignore SIGTERM, fork without end, flood their output, or print the lines the
checks look for without doing the work. Every entry gets its row, honest work full marks,
the forger nothing, the run ends within the bound it states, and nothing is left."""

from __future__ import annotations

import csv
import os
import re
import socket
import stat
import time
from pathlib import Path

import pytest

from labctl.names import LAB_LABEL

from .conftest import run_cli

LAB = """
name: itest-hostile
networks:
  room: {subnet: 10.233.1.0/24}
hosts:
  server:
    networks: [room]
    files: ["./submission/server.py:/exercise/server.py"]
    command: python3 -u /exercise/server.py
    ready: {tcp: 9000}
  student: {networks: [room]}
  other: {networks: [room]}
checks:
  - name: upper case
    from: student
    to: server:9000
    timeout: 2s
    points: 2
    tcp: {send: "hello\\n", expect: "HELLO\\n"}
    server: {log: "client {client}"}
  - name: upper case from another host
    from: other
    to: server:9000
    timeout: 2s
    tcp: {send: "again\\n", expect: "AGAIN\\n"}
    server: {log: "client {client}"}
"""

HONEST = """
import socket
listener = socket.create_server(("0.0.0.0", 9000))
while True:
    conn, peer = listener.accept()
    print("client", peer[0], flush=True)
    with conn:
        data = conn.recv(1024)
        if data:
            conn.sendall(data.upper())
"""
STUBBORN = """
import signal, socket, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
listener = socket.create_server(("0.0.0.0", 9000))
while True:
    time.sleep(3600)
"""
FORK_BOMB = """
import os, socket
listener = socket.create_server(("0.0.0.0", 9000))
while True:
    try:
        os.fork()
    except OSError:
        pass
"""
FLOOD = """
import socket, sys, threading
def flood():
    while True:
        sys.stdout.write("\\x1b[2J\\x1b]0;pwned\\x07 =cmd|' /C calc'!A0 " * 100 + "\\n")
threading.Thread(target=flood, daemon=True).start()
""" + HONEST.replace("import socket", "import socket  # and floods")
# Prints every line the checks look for, for every address of the lab, and answers nothing.
FORGER = """
import socket, time
listener = socket.create_server(("0.0.0.0", 9000))
while True:
    for last in range(1, 255):
        print(f"client 10.233.1.{last}", flush=True)
    time.sleep(0.05)
"""
NOT_UTF8 = os.fsdecode(b"b\xe9a\xff")
ODD_NAME = "=HYPERLINK(\"x\"), a: 'b' c"
HONEST_ONES = ["ada", ODD_NAME, NOT_UTF8, "full-of-traps"]


def _deep(folder: Path, depth: int) -> None:
    """`depth` nested folders, made through folder descriptors (a path that long is refused)."""
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        for _ in range(depth):
            os.mkdir("d", dir_fd=descriptor)
            inner = os.open("d", os.O_RDONLY, dir_fd=descriptor)
            os.close(descriptor)
            descriptor = inner
    finally:
        os.close(descriptor)


def _remove_deep(folder: Path) -> None:
    """Python's own rmtree recurses, and 2,000 folders are past its limit."""
    chain = []
    descriptor = os.open(folder, os.O_RDONLY)
    while True:
        try:
            inner = os.open("d", os.O_RDONLY | os.O_NOFOLLOW, dir_fd=descriptor)
        except FileNotFoundError:
            break
        chain.append(descriptor)
        descriptor = inner
    os.close(descriptor)
    while chain:
        parent = chain.pop()
        os.rmdir("d", dir_fd=parent)
        os.close(parent)


@pytest.fixture(scope="module")
def graded(engine, image, tmp_path_factory):
    folder = tmp_path_factory.mktemp("hostile")
    (folder / "exam.yaml").write_text(LAB)   # -f names the lab graded, whatever its name
    (folder / "submission").mkdir()
    (folder / "submission" / "server.py").write_text(HONEST)
    room = folder / "class"
    programs = {**{name: HONEST for name in HONEST_ONES}, "stubborn": STUBBORN, "forkbomb": FORK_BOMB,
                "flood": FLOOD, "forger": FORGER}
    for name, program in programs.items():
        (room / name).mkdir(parents=True)
        (room / name / "server.py").write_text(program)
    traps = room / "full-of-traps"
    os.mkfifo(traps / "pipe")
    listening = socket.socket(socket.AF_UNIX)
    listening.bind(str(traps / "socket"))
    with open(traps / "sparse.bin", "wb") as sparse:
        sparse.truncate(1 << 30)
    _deep(traps, 2000)
    (room / "linked").symlink_to(room / "ada")
    started = time.monotonic()
    try:
        result = run_cli("-f", str(folder / "exam.yaml"), "grade", str(room), "--parallel", "2",
                         "--timeout", "20", "--csv", str(folder / "grades.csv"),
                         "--html", str(folder / "grades.html"), timeout=900)
    finally:
        listening.close()
        _remove_deep(traps)
    elapsed = time.monotonic() - started
    with open(folder / "grades.csv", newline="", encoding="utf-8", errors="surrogateescape") as reading:
        rows = list(csv.DictReader(reading))
    return result, rows, elapsed, programs


def _row(rows: list[dict[str, str]], name: str) -> dict[str, str]:
    shown = [row for row in rows if row["student"].lstrip("'") == name
             or (name == NOT_UTF8 and row["student"].startswith("b") and row["student"].endswith(("\\xff", "�")))]
    assert len(shown) == 1, (name, [row["student"] for row in rows])
    return shown[0]


def test_every_entry_has_a_row_and_honest_work_full_marks(graded):
    result, rows, _elapsed, programs = graded
    assert result.returncode == 0, result.stderr
    assert len(rows) == len(programs) + 1, [row["student"] for row in rows]   # and the link
    for name in HONEST_ONES:
        row = _row(rows, name)
        assert (row["score"], row["points"]) == ("3", "3"), row
    traps = _row(rows, "full-of-traps")["failed checks"]
    for left_out in ("pipe: a named pipe", "socket: a socket", "sparse.bin: 1024 MiB", "deeper than 32 folders"):
        assert left_out in traps, traps


def test_what_cannot_be_graded_or_does_no_work_scores_nothing_and_says_why(graded):
    _result, rows, _elapsed, _programs = graded
    assert "symbolic link" in _row(rows, "linked")["failed checks"]
    for name in ("stubborn", "forkbomb", "forger"):
        row = _row(rows, name)
        assert row["score"] == "0", row
    # The forger printed every line the checks look for; the probe's own exchange failed.
    assert "upper case" in _row(rows, "forger")["failed checks"]
    # The flood answers correctly; its own output may bury the line a check looks for (that
    # point is the flood's to lose), and costs nobody else anything.
    flood = _row(rows, "flood")
    assert all(reason.startswith(("server output", "not run: the time")) for reason in
               re.findall(r"(?:^|; )[^:;]+: ([^;(]+)", flood["failed checks"])), flood


def test_no_cell_is_a_formula_and_no_control_reaches_the_files(graded, tmp_path):
    _result, rows, _elapsed, _programs = graded
    for row in rows:
        for value in row.values():
            assert not value.startswith(("=", "+", "-", "@")), row
            assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f]", value), row


def test_the_run_ends_within_its_bound_and_leaves_nothing(engine, graded):
    result, _rows, elapsed, _programs = graded
    stated = re.search(r"the run ends within (\d+) min", result.stderr)
    assert stated, result.stderr
    assert elapsed < int(stated.group(1)) * 60
    labels = {c["Labels"].get(LAB_LABEL) for c in engine.client.api.containers(all=True)}
    assert not [label for label in labels if label and label.startswith("itest-hostile")]
    assert not [n.name for n in engine.client.networks.list() if "itest-hostile" in n.name]
    scratch = [entry for entry in os.listdir("/tmp") if entry.startswith("labctl-grade-")
               and stat.S_ISDIR(os.lstat(f"/tmp/{entry}").st_mode)]
    assert not scratch, scratch
