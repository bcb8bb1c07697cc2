"""Grades that do not depend on timing: a gallery exercise brought up fresh and checked N
times in a row (default: chat, 20 rounds), its reference solution expected to pass every
check every time. Prints each round's failures and the count; exits 1 on any failure.

    python bench/rounds.py [EXERCISE] [ROUNDS]
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from labctl.engines.factory import choose, open_engine, read_lab
from labctl.ops import lifecycle
from labctl.ops.gallery import init


def quiet(_message: str) -> None:
    pass


def main() -> int:
    exercise = sys.argv[1] if len(sys.argv) > 1 else "chat"
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 20
    failures = 0
    with tempfile.TemporaryDirectory(prefix="labctl-rounds-") as scratch:
        folder = Path(scratch) / exercise
        init(exercise, folder)
        lab_file = folder / "lab.yaml"
        choice = choose(None, None, lab_file)
        started = time.monotonic()
        for number in range(1, rounds + 1):
            lab = read_lab(lab_file, choice)
            engine = open_engine(lab.topology, choice)
            lifecycle.up(lab.topology, engine, quiet)
            try:
                results, seconds = lifecycle.check(lab, engine)
            finally:
                lifecycle.down(lab.topology, engine, quiet)
            failed = [f"{result.name}: {result.reason}" for result in results if not result.passed]
            failures += bool(failed)
            print(f"round {number:2}: {len(results) - len(failed)}/{len(results)} passed in {seconds:.2f}s"
                  + "".join(f"\n    FAIL {line}" for line in failed), flush=True)
        print(f"{exercise}: {rounds - failures} of {rounds} fresh up + check rounds passed every check "
              f"({time.monotonic() - started:.0f}s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
