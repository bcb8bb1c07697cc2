"""The long fuzz run of the lab-file reader (`make fuzz`): 10,000 hostile inputs, made from
the run's seed (tests/fuzz/hostile.py), each read as `labctl validate` reads a file.

Every input must be accepted, or refused with one line, within 2 seconds and 200 MB. The
inputs run in worker processes whose address space is capped (RLIMIT_AS) at what they
hold after start-up plus 200 MB, so an input that needs more fails with MemoryError and
counts as a crash; a watchdog ends one that runs past 30 seconds. The counts are printed;
the run exits 1 on any crash or any input over 2 seconds, and keeps the inputs that did
it in a folder it names.

    python tests/fuzz/run.py [--count 10000] [--seed 1] [--workers N]
"""

from __future__ import annotations

import argparse
import collections
import os
import resource
import shutil
import signal
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.fuzz import hostile  # noqa: E402

WATCHDOG_SECONDS = 30
CHUNK = 50

_worker: dict = {}


def _vm_size() -> int:
    """This process's address space in bytes, as /proc reports it."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmSize:"):
            return int(line.split()[1]) * 1024
    return 0


def _start_worker(root: str, megabytes: int) -> None:
    folder = Path(root) / f"worker-{os.getpid()}"
    _worker["folders"] = hostile.prepare_folders(folder)
    # The default lab once, so what the reader imports and discovers is there before the
    # clock and the address-space cap start counting.
    assert hostile.judge(hostile.REPO / "lab.yaml").kind == "accepted"
    _worker["seeds"] = hostile.seeds()
    _worker["baseline_rss"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    limit = _vm_size() + megabytes * (1 << 20)
    resource.setrlimit(resource.RLIMIT_AS, (limit, resource.getrlimit(resource.RLIMIT_AS)[1]))

    def overdue(signum, frame):
        raise TimeoutError(f"still running after {WATCHDOG_SECONDS}s")
    signal.signal(signal.SIGALRM, overdue)


def _run_chunk(seed: int, indices: list[int]) -> list[tuple]:
    """(index, label, kind, seconds, detail, data if it failed, peak RSS growth) for each."""
    results = []
    for index in indices:
        name, data, label = hostile.make_input(seed, index, _worker["seeds"])
        path = _worker["folders"][name] / hostile.INPUT_NAME
        path.write_bytes(data)
        signal.alarm(WATCHDOG_SECONDS)
        try:
            outcome = hostile.judge(path)
        except TimeoutError as exc:          # raised outside judge's own handler
            outcome = hostile.Outcome("crashed", float(WATCHDOG_SECONDS), f"watchdog: {exc}")
        finally:
            signal.alarm(0)
        failed = outcome.kind == "crashed" or outcome.seconds > hostile.LIMIT_SECONDS
        growth = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - _worker["baseline_rss"]
        results.append((index, label, outcome.kind, outcome.seconds, outcome.detail if failed else "",
                        data if failed else None, growth))
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workers", type=int, default=max(1, min(4, os.cpu_count() or 1)))
    parser.add_argument("--megabytes", type=int, default=hostile.LIMIT_MEGABYTES)
    args = parser.parse_args(argv)

    root = tempfile.mkdtemp(prefix="labctl-fuzz-")
    started = time.monotonic()
    counts: collections.Counter = collections.Counter()
    by_label: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    failures: list[tuple] = []
    slowest = (0.0, "", -1)
    peak_growth = 0
    chunks = [list(range(start, min(start + CHUNK, args.count))) for start in range(0, args.count, CHUNK)]
    pending = chunks
    while pending:
        broken: list[list[int]] = []
        with ProcessPoolExecutor(args.workers, initializer=_start_worker,
                                 initargs=(root, args.megabytes)) as pool:
            futures = [(chunk, pool.submit(_run_chunk, args.seed, chunk)) for chunk in pending]
            for chunk, future in futures:
                try:
                    results = future.result()
                except BrokenProcessPool:
                    broken.append(chunk)
                    continue
                for index, label, kind, seconds, detail, data, growth in results:
                    counts[kind] += 1
                    family = label.split(":")[0] + ":" + label.split(":")[1].split("+")[0]
                    by_label[family][kind] += 1
                    if seconds > slowest[0]:
                        slowest = (seconds, label, index)
                    if seconds > hostile.LIMIT_SECONDS:
                        counts["slow"] += 1
                    peak_growth = max(peak_growth, growth)
                    if data is not None:
                        failures.append((index, label, kind, seconds, detail, data))
        # A worker that died took its chunk with it: each input of it runs alone, so the
        # one that killed it is found and counted as a crash.
        pending = []
        for chunk in broken:
            if len(chunk) == 1:
                counts["crashed"] += 1
                name, data, label = hostile.make_input(args.seed, chunk[0])
                failures.append((chunk[0], label, "crashed", 0.0, "the worker process died", data))
            else:
                pending += [[index] for index in chunk]

    elapsed = time.monotonic() - started
    total = counts["accepted"] + counts["refused"] + counts["crashed"]
    print(f"labctl fuzz: {total} inputs (seed {args.seed}, {args.workers} workers) in {elapsed:.1f}s")
    print(f"  accepted        {counts['accepted']:>6}")
    print(f"  refused         {counts['refused']:>6}   (each with one line)")
    print(f"  crashed         {counts['crashed']:>6}")
    print(f"  over {hostile.LIMIT_SECONDS:g}s         {counts['slow']:>6}")
    print(f"  slowest         {slowest[0]:>6.3f}s  (input {slowest[2]}, {slowest[1]})")
    print(f"  peak memory     {peak_growth / (1 << 20):>6.1f} MB over a worker's start "
          f"(address space capped at start + {args.megabytes} MB)")
    print("  by source (a mutated lab by its first mutation): accepted / refused / crashed")
    for family in sorted(by_label):
        tally = by_label[family]
        print(f"    {family:<28} {tally['accepted']:>5} / {tally['refused']:>5} / {tally['crashed']:>3}")
    if failures:
        keep = Path(tempfile.mkdtemp(prefix="labctl-fuzz-failures-"))
        for index, label, kind, seconds, detail, data in failures:
            (keep / f"input-{index}.yaml").write_bytes(data)
        print(f"\n{len(failures)} failing inputs kept in {keep} (rerun one: labctl -f FILE validate)")
        for index, label, kind, seconds, detail, data in failures[:10]:
            print(f"--- input {index} ({label}): {kind}, {seconds:.3f}s")
            print("    " + detail.strip().replace("\n", "\n    "))
    shutil.rmtree(root, ignore_errors=True)
    return 1 if counts["crashed"] or counts["slow"] else 0


if __name__ == "__main__":
    sys.exit(main())
