"""What impairments really do, beside what was declared: added delay, loss ratio and
throughput, measured with services/measure.py between two hosts of a small lab, one of
them impaired (one way: the client's egress). Runs the mechanism this kernel gets, or the
one LABCTL_SHAPER names.

Run with `make bench`. The lab comes up under its own name and subnet and always goes.
"""

from __future__ import annotations

import json
import math
import statistics
import sys
import tempfile
from pathlib import Path

from labctl.engines.factory import open_engine, read_lab
from labctl.engines.images import ensure_host_image
from labctl.model.shaping import LiveState, change_impairment
from labctl.names import SERVICES_PATH
from labctl.ops import lifecycle
from labctl.ops.faults import apply_live

LAB = """\
name: bench-bend
networks:
  net: {subnet: 10.251.0.0/24}
hosts:
  client: {networks: {net: 10.251.0.2}}
  server:
    networks: {net: 10.251.0.3}
    services: [{tcp-echo: {port: 7}}, {udp-echo: {port: 7}}]
"""


def quiet(_message: str) -> None:
    pass


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="labctl-bench-") as folder:
        path = Path(folder) / "lab.yaml"
        path.write_text(LAB)
        topology = read_lab(path).topology
        engine = open_engine(topology)
        ensure_host_image(engine.image_client, quiet)
        lifecycle.up(topology, engine, quiet)
        try:
            report(topology, engine)
        finally:
            lifecycle.down(topology, engine, quiet)
    return 0


def measure(topology, engine, what: str, amount: int):
    result = engine.exec(topology, "client", ["python3", f"{SERVICES_PATH}/measure.py", what,
                                              "10.251.0.3", "7", str(amount)])
    if result.exit_code != 0:
        raise SystemExit(result.stderr.decode())
    return json.loads(result.stdout)


def impair(topology, engine, **values: str) -> str:
    live = LiveState()
    if values:
        change_impairment(topology, live, "client:net", values)
    apply_live(topology, engine, quiet, live)
    reports = [line for line in engine.helper_logs(topology, "lc-net-client").splitlines() if line.startswith("{")]
    return json.loads(reports[0])["mechanism"] if reports and values else "-"


def report(topology, engine) -> None:
    baseline = statistics.median(measure(topology, engine, "rtt", 50))
    print(f"baseline round trip: {baseline * 1000:.3f} ms (median of 50)")
    print(f"{'declared':>16}  {'measured':>26}  {'error':>7}  mechanism")
    for delay in (10, 50, 100):
        mechanism = impair(topology, engine, delay=f"{delay}ms")
        added = statistics.median(measure(topology, engine, "rtt", 30)) - baseline
        print(f"{f'delay {delay}ms':>16}  {f'{added * 1000:.2f}ms added (median of 30)':>26}  "
              f"{(added * 1000 - delay) / delay:>+7.1%}  {mechanism}")
    for loss in (5, 20):
        mechanism = impair(topology, engine, loss=f"{loss}%")
        received = len(measure(topology, engine, "udp", 1000))
        lost = 1 - received / 1000
        half = 2.576 * math.sqrt(loss / 100 * (1 - loss / 100) / 1000)
        inside = "inside" if abs(lost - loss / 100) <= half else "OUTSIDE"
        print(f"{f'loss {loss}%':>16}  {f'{lost:.1%} of 1000 datagrams':>26}  {(lost * 100 - loss) / loss:>+7.1%}  "
              f"{mechanism} ({inside} the binomial 99% interval {loss / 100 - half:.1%}..{loss / 100 + half:.1%})")
    for rate in (2, 8, 20):
        mechanism = impair(topology, engine, rate=f"{rate}mbit")
        size = rate * 250_000  # about 2 seconds' worth at the declared rate
        bulk = measure(topology, engine, "bulk", size)
        measured = size * 8 / bulk["seconds"] / 1e6
        print(f"{f'rate {rate}mbit':>16}  {f'{measured:.2f}mbit over {size // 1000}kB':>26}  "
              f"{(measured - rate) / rate:>+7.1%}  {mechanism} (payload; the rate counts headers too)")
    impair(topology, engine)


if __name__ == "__main__":
    sys.exit(main())
