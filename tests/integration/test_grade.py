"""`labctl grade` on the real engine: five students' folders, two at a time, among them one
that hangs, one that crashes, one that never becomes ready and one that floods its output.
Each costs its student points and nothing more; the CSV and the HTML say so; nothing of
any instance is left behind."""

from __future__ import annotations

import csv
import re
import textwrap

import pytest

from labctl.names import LAB_LABEL

from .conftest import run_cli

LAB = """
name: itest-grade
networks:
  room: {subnet: 10.236.1.0/24, subnet6: "fd00:236:1::/64"}
hosts:
  server:
    networks: [room]
    files: ["./submission/server.py:/exercise/server.py"]
    command: python3 -u /exercise/server.py
    ready: {tcp: 9000}
  student: {networks: [room]}
checks:
  - name: upper case
    from: student
    to: server:9000
    timeout: 2s
    points: 2
    hint: answer each line in upper case
    tcp: {send: "hello\\n", expect: "HELLO\\n"}
    server: {log: "client {client}"}
  - name: upper case over ipv6
    from: student
    to: server:9000
    family: 6
    timeout: 2s
    tcp: {send: "six\\n", expect: "SIX\\n"}
"""

SERVE = """
import socket, sys
def serve(transform):
    listener = socket.create_server(("::", 9000), family=socket.AF_INET6, dualstack_ipv6=True)
    while True:
        conn, peer = listener.accept()
        host = peer[0].removeprefix("::ffff:")
        print("client", host, flush=True)
        with conn:
            data = conn.recv(1024)
            if data:
                conn.sendall(transform(data))
"""

STUDENTS = {
    "ada": SERVE + "serve(bytes.upper)\n",                                     # all right
    "bea": SERVE + "serve(lambda data: data)\n",                               # echoes: wrong
    "cal": SERVE.replace("data = conn.recv(1024)", "import time; time.sleep(3600)") + "serve(bytes.upper)\n",  # hangs
    "dee": "raise SystemExit('crashed at start')\n",                           # crashes
    "eve": "import time\nwhile True: time.sleep(60)\n",                        # never listens
    "fay": SERVE.replace("print(\"client\"", "print('x' * 100000) or print(\"client\"") + textwrap.dedent("""
        import threading
        def flood():
            while True:
                sys.stdout.write("flood " * 1000 + "\\n")
        threading.Thread(target=flood, daemon=True).start()
        serve(bytes.upper)
    """),
}


@pytest.fixture(scope="module")
def graded(engine, image, tmp_path_factory):
    folder = tmp_path_factory.mktemp("grade")
    (folder / "lab.yaml").write_text(LAB)
    (folder / "submission").mkdir()   # the reference solution: each student's folder takes its place
    (folder / "submission" / "server.py").write_text(STUDENTS["ada"])
    for student, program in STUDENTS.items():
        (folder / "class" / student).mkdir(parents=True)
        (folder / "class" / student / "server.py").write_text(program)
    result = run_cli("-f", str(folder / "lab.yaml"), "grade", str(folder / "class"), "--parallel", "2",
                     "--timeout", "40", "--csv", str(folder / "grades.csv"), "--html", str(folder / "grades.html"),
                     timeout=600)
    rows = {row["student"]: row for row in csv.DictReader((folder / "grades.csv").open())}
    return result, rows, folder


def test_each_student_gets_a_row_with_the_score_they_earned(graded):
    result, rows, _folder = graded
    assert result.returncode == 0, result.stderr
    assert sorted(rows) == sorted(STUDENTS)
    score = {name: (row["score"], row["points"]) for name, row in rows.items()}
    assert score["ada"] == ("3", "3"), rows
    # The flood may bury its own `client` line, or spend its own time reading it (those points
    # are the student's to lose), and nobody else pays for it.
    assert all(reason.startswith(("server output", "not run: the time")) for reason in
               re.findall(r"(?:^|; )[^:;]+: ([^;(]+)", rows["fay"]["failed checks"])), rows["fay"]
    assert score["bea"] == ("0", "3")
    assert "upper case: expected exactly 'HELLO\\n', got 'hello\\n' (hint: answer each line in upper case)" \
        in rows["bea"]["failed checks"]
    assert score["cal"] == ("0", "3") and "timeout" in rows["cal"]["failed checks"]
    for student in ("dee", "eve"):
        assert score[student] == ("0", "3") and rows[student]["failed checks"].startswith("never ready"), rows[student]
    assert "crashed at start" in rows["dee"]["failed checks"]
    assert "graded 6/6" in result.stderr


def test_the_summary_page_and_the_table_name_each_failure(graded):
    result, _rows, folder = graded
    page = (folder / "grades.html").read_text()
    assert "6 submissions" in page and page.count("<tr>") == 7
    assert "<b>upper case</b>" in page and "never ready" in page
    assert "STUDENT" in result.stdout and "ada" in result.stdout


def test_no_instance_is_left_behind(engine, graded):
    labels = {container.labels.get(LAB_LABEL) for container in engine.client.containers.list(all=True)}
    networks = {network.name for network in engine.client.networks.list()}
    assert not [label for label in labels if label and label.startswith("itest-grade")]
    assert not [name for name in networks if "itest-grade" in name]
