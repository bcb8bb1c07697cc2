"""How fast checks run: 10, 100 and 500 checks on the default lab, and the overhead of one
check beside a bare `docker exec true` measured in the same run.

Run with `make bench`. It brings up a copy of the default lab under its own name and
subnets, and always takes it down again.
"""

from __future__ import annotations

import copy
import statistics
import sys
import tempfile
import time
from pathlib import Path

from labctl.assets import host_tag
from labctl.engines.compose import ComposeEngine
from labctl.engines.factory import open_engine, read_lab
from labctl.engines.images import ensure_host_image
from labctl.labfile.load import Lab
from labctl.ops import lifecycle
from labctl.ops.checks import run_checks

REPO = Path(__file__).resolve().parent.parent
REPEATS = 15


def progress(message: str) -> None:
    print(f"  labctl: {message}", file=sys.stderr, flush=True)


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def timed(action) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="labctl-bench-") as folder:
        text = (REPO / "lab.yaml").read_text().replace("name: campus", "name: bench")
        text = text.replace("10.10.", "10.250.").replace(r"10\.10\.", r"10\.250\.")
        path = Path(folder) / "lab.yaml"
        path.write_text(text)
        lab = read_lab(path)
        topology = lab.topology
        engine = open_engine(topology)
        assert isinstance(engine, ComposeEngine)  # the bench compares with `docker exec` on this engine
        ensure_host_image(engine.image_client, progress)
        image = host_tag()
        lifecycle.up(topology, engine, progress)
        try:
            report(lab, engine, image)
        finally:
            lifecycle.down(topology, engine, progress)
    return 0


def report(lab: Lab, engine: ComposeEngine, image: str) -> None:
    """Per-check overhead is the wall time of a run less the exchanges themselves; for a
    batch, the wall time shared out over its checks (which include the server's side)."""
    container = engine.client.containers.list(filters={"label": ["io.labctl.lab=bench", "io.labctl.host=alice"]})[0]
    container.exec_run(["true"])  # warm up
    bare = median_ms([timed(lambda: container.exec_run(["true"])) for _ in range(REPEATS)])

    topology = lab.topology
    single = next(check for check in lab.checks if check.name == "tcp echo")
    without_server = copy.deepcopy(single)
    without_server.server.mode = "off"
    rows = []
    for label, check in (("one check, client side only", without_server),
                         ("one check, both sides", single)):
        walls, exchanges = [], []
        for _ in range(REPEATS):
            started = time.perf_counter()
            [result] = run_checks(topology, engine, [check], image)
            walls.append(time.perf_counter() - started)
            exchanges.append(result.elapsed_ms / 1000)
            assert result.passed, result.reason
        overhead = median_ms([wall - exchange for wall, exchange in zip(walls, exchanges)])
        rows.append((label, median_ms(walls), overhead))

    print()
    print(f"bare `docker exec true` (median of {REPEATS}): {bare:7.1f} ms")
    for label, wall, overhead in rows:
        print(f"{label:<30} wall {wall:7.1f} ms, overhead {overhead:7.1f} ms = {overhead / bare:4.2f}x docker exec")
    print()
    print(f"{'checks':>7} {'wall':>9} {'per check':>10} {'vs exec':>8}  result")
    # Exchanges only: a wire check is a capture around other checks, timed by its capture.
    exchanges = [check for check in lab.checks if check.kind.runner != "capture"]
    for count in (10, 100, 500):
        checks = []
        for index in range(count):
            check = copy.deepcopy(exchanges[index % len(exchanges)])
            check.name = f"{check.name} #{index}"
            checks.append(check)
        started = time.perf_counter()
        results = run_checks(topology, engine, checks, image)
        wall = time.perf_counter() - started
        passed = sum(result.passed for result in results)
        failures = {result.reason for result in results if not result.passed}
        per_check = wall / count * 1000
        print(f"{count:>7} {wall:8.2f}s {per_check:8.1f}ms {per_check / bare:7.2f}x  {passed}/{count} passed"
              + (f" ({'; '.join(sorted(failures))[:120]})" if failures else ""))


if __name__ == "__main__":
    sys.exit(main())
