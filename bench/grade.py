"""A class in minutes: `labctl grade` of 30 submissions of the gallery's client-server
exercise (6 hosts each: a server, a router, four clients) with `--parallel 4`, through the
CLI as a teacher types it. Prints the time per submission and in all, against the target
of the 30 in under 2 minutes, and checks every row's score against what its submission
deserves (the reference solution: full marks; the gallery's broken and forged servers:
exactly their expected failures).

The class is the gallery's own three servers in turn (the reference twice as often), each
under a student's folder name. The lab is renamed bench-class, so its instances
(bench-class-grade1..4, on subnets moved by `grade --parallel`) stand beside nothing else.
The run is bounded: past its bound it is recorded as hung, killed, and its instances are
taken down by name (`labctl down NAME`, bounded too), naming what the engine keeps.

    python bench/grade.py [--students 30] [--parallel 4] [--bound SECONDS]
"""

from __future__ import annotations

import argparse
import csv
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from labctl.engines.containers import docker_client
from labctl.names import LAB_LABEL
from labctl.ops.gallery import init

LABCTL = str(Path(sys.executable).parent / "labctl")
EXERCISE = "client-server"
LAB_NAME = "bench-class"
TARGET = 120.0            # seconds for the 30 (issue 22)
KINDS = ("submission", "broken", "submission", "forged")   # the class, in turn
CLEANUP_BOUND = 120


def say(message: str) -> None:
    print(f"  bench: {message}", file=sys.stderr, flush=True)


def run(argv: list[str], bound: float) -> tuple[subprocess.CompletedProcess | None, float]:
    """Run in a session of its own; past `bound`, kill the whole group: (None, seconds)."""
    started = time.perf_counter()
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        out, err = process.communicate(timeout=bound)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        return None, time.perf_counter() - started
    except BaseException:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        raise
    return subprocess.CompletedProcess(argv, process.returncode, out, err), time.perf_counter() - started


def left_behind(parallel: int) -> list[str]:
    client = docker_client()
    found = []
    for slot in range(1, parallel + 1):
        selector = {"label": f"{LAB_LABEL}={LAB_NAME}-grade{slot}"}
        found += [f"container {c['Names'][0].lstrip('/')}" for c in client.api.containers(all=True, filters=selector)]
        found += [f"network {n['Name']}" for n in client.api.networks(filters=selector)]
    return found


def expected(folder: Path, kind: str) -> set[str]:
    path = folder / kind / "expected-failures.txt"
    return set(path.read_text().splitlines()) - {""} if path.exists() else set()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=30)
    parser.add_argument("--parallel", type=int, default=4)
    parser.add_argument("--bound", type=float, default=600, help="the whole grading's bound in seconds")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="labctl-bench-grade-") as scratch:
        lab = Path(scratch) / EXERCISE
        init(EXERCISE, lab)
        text = (lab / "lab.yaml").read_text()
        (lab / "lab.yaml").write_text(text.replace(f"name: {EXERCISE}\n", f"name: {LAB_NAME}\n", 1))
        source = Path(__file__).resolve().parent.parent / "gallery" / EXERCISE
        kinds = {}
        for number in range(1, args.students + 1):
            student, kind = f"student{number:02d}", KINDS[(number - 1) % len(KINDS)]
            (lab / "class" / student).mkdir(parents=True)
            (lab / "class" / student / "server.py").write_bytes((source / kind / "server.py").read_bytes())
            kinds[student] = kind
        say(f"grading {args.students} submissions of {EXERCISE} with --parallel {args.parallel} "
            f"(bound {args.bound:.0f}s)")
        result, seconds = run([LABCTL, "-f", str(lab / "lab.yaml"), "grade", str(lab / "class"),
                               "--parallel", str(args.parallel), "--out", str(lab / "grades")], args.bound)
        problems: list[str] = []
        if result is None:
            problems.append(f"HUNG: labctl grade still running after its bound of {args.bound:.0f}s, killed")
            for slot in range(1, args.parallel + 1):
                down, _ = run([LABCTL, "down", f"{LAB_NAME}-grade{slot}"], CLEANUP_BOUND)
                if down is None:
                    problems.append(f"labctl down {LAB_NAME}-grade{slot} hung too ({CLEANUP_BOUND}s)")
        elif result.returncode:
            problems.append("labctl grade exited {}: {}".format(
                result.returncode, " | ".join((result.stderr.strip() or result.stdout.strip()).splitlines()[-4:])))
        rows = []
        grades = lab / "grades" / "grades.csv"
        if grades.exists():
            rows = list(csv.DictReader(grades.open()))
        checks = [check["name"] for check in yaml.safe_load((lab / "lab.yaml").read_text())["checks"]]
        for row in rows:
            kind = kinds.get(row["student"], "?")
            cell = row["failed checks"]
            failed = {name for name in checks if cell.startswith(f"{name}: ") or f"; {name}: " in cell}
            want = expected(source, kind)
            if failed != want:
                problems.append(f"{row['student']} ({kind}): failed {sorted(failed)}, expected {sorted(want)}")
        remaining = left_behind(args.parallel)

    print(f"\nA class in minutes: labctl grade, {args.students} submissions of {EXERCISE} "
          f"(6 hosts each), --parallel {args.parallel}, {os.cpu_count()} cores")
    if rows:
        each = [float(row["seconds"]) for row in rows]
        print(f"  in all                    {seconds:7.1f}s   target: {args.students} in under {TARGET:.0f}s: "
              + ("met" if seconds < TARGET and len(rows) == args.students and not problems else "MISSED"))
        print(f"  per submission (wall/n)   {seconds / len(rows):7.2f}s")
        print(f"  one submission's own run  median {statistics.median(each):.1f}s, max {max(each):.1f}s "
              "(coming up, its checks, going down; K at a time)")
        print(f"  graded rows               {len(rows)}/{args.students}, "
              f"{sum(row['failed checks'] == '' for row in rows)} with full marks")
    else:
        print(f"  no rows after {seconds:.1f}s")
    for problem in problems:
        print(f"  PROBLEM: {problem}")
    if remaining:
        print(f"  LEFT BEHIND (the engine refused to remove them): {', '.join(remaining)}")
    return 1 if problems or remaining or not rows else 0


if __name__ == "__main__":
    sys.exit(main())
