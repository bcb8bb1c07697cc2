"""The page of `labctl ui`, measured:

- (a) a 100-host lab's page (bench/labs.py's routed plan: 100 hosts, 2 routers, 4 networks,
  500 checks) in headless Chromium: the time from navigation to its graph laid out (the
  page's `labctl:laid-out` mark) and to the first frame drawn after it, against the 2 s
  target. The lab is not brought up: its page draws it from the lab file, every host absent.
- (b) an idle lab (a copy of the default lab, up, no page open): the machine's, the lab's and
  the engine's CPU over the same window with and without `labctl ui` serving it, and the
  server's own CPU. Windows alternate, without and with, ROUNDS times each.

Run with `make bench` (or `.venv/bin/python bench/ui.py [--rounds N] [--window S] [--skip-idle]`).
The lab comes up under its own name and subnets and always goes.
"""

from __future__ import annotations

import argparse
import os
import queue
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(REPO / "tests" / "integration"))

import browser  # noqa: E402  (tests/integration/browser.py: how Chromium is launched here)
import floor  # noqa: E402  (bench/floor.py: CPU from /proc and the cgroups)
import labs  # noqa: E402  (bench/labs.py)

from labctl.engines.factory import open_engine, read_lab  # noqa: E402
from labctl.engines.images import ensure_host_image  # noqa: E402
from labctl.ops import lifecycle  # noqa: E402

TARGET = 2.0          # seconds: the bound for a 100-host lab's page
PAGES = 5             # page loads measured
WINDOW = 15.0         # seconds of one idle window
ROUNDS = 2            # idle windows without, and with, the server
BIG_OCTET, IDLE_OCTET = 209, 249
LABCTL = [sys.executable, "-m", "labctl"]


def say(message: str) -> None:
    print(f"  bench: {message}", file=sys.stderr, flush=True)


class Server:
    """`labctl ui --port 0` for a lab file, until stopped; its address as it printed it."""

    def __init__(self, lab_file: Path):
        self.process = subprocess.Popen([*LABCTL, "-f", str(lab_file), "ui", "--port", "0"], stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True)
        lines: queue.Queue[str] = queue.Queue()
        self.said: list[str] = []

        def read(stream, keep: bool) -> None:
            for line in stream:
                self.said.append(line)
                if keep:
                    lines.put(line.strip())
            if keep:
                lines.put("")
        threading.Thread(target=read, args=(self.process.stdout, True), daemon=True).start()
        threading.Thread(target=read, args=(self.process.stderr, False), daemon=True).start()
        self.url = lines.get(timeout=120)      # it binds, then prints: no clock needed
        if not self.url.startswith("http://"):
            self.stop()
            raise SystemExit("labctl ui did not start: " + "".join(self.said))

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")   # utime + stime

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


# --- (a) the 100-host page ------------------------------------------------------------------

MEASURE = """async () => {
  const mark = performance.getEntriesByName('labctl:laid-out')[0];
  await new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done)));
  return {laidOut: mark.startTime, drawn: performance.now(), hosts: labctlGraph.nodes('.host').length,
          absent: document.querySelectorAll('tr[data-host][data-state="absent"]').length,
          arrows: labctlGraph.edges('.check').length};
}"""


def big_page(folder: Path) -> list[dict]:
    from playwright.sync_api import sync_playwright
    plan = labs.routed_plan("bench-ui-big", BIG_OCTET)
    path = folder / "big" / "lab.yaml"
    path.parent.mkdir()
    path.write_text(labs.labctl_yaml(plan))
    server = Server(path)
    runs = []
    try:
        with sync_playwright() as playwright:
            chromium = playwright.chromium.launch(executable_path=browser.chromium(), args=browser.FLAGS)
            try:
                for _ in range(PAGES):
                    context = chromium.new_context(viewport={"width": 1400, "height": 1000})
                    page = context.new_page()
                    errors: list[str] = []
                    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
                    page.goto(server.url)
                    page.wait_for_function("() => document.body.dataset.ready === 'true'", timeout=60_000)
                    figures = page.evaluate(MEASURE)
                    figures["errors"] = errors
                    runs.append(figures)
                    context.close()
            finally:
                chromium.close()
    finally:
        server.stop()
    return runs


def report_big(runs: list[dict]) -> None:
    laid = [run["laidOut"] / 1000 for run in runs]
    drawn = [run["drawn"] / 1000 for run in runs]
    first = runs[0]
    print(f"\nA 100-host lab's page ({first['hosts']} hosts drawn, {first['absent']} shown absent, "
          f"{first['arrows']} check arrows), {len(runs)} loads in headless Chromium:")
    print(f"  navigation -> graph laid out      median {statistics.median(laid):5.2f} s   max {max(laid):5.2f} s   "
          + " ".join(f"{value:.2f}" for value in laid))
    print(f"  navigation -> first frame drawn   median {statistics.median(drawn):5.2f} s   max {max(drawn):5.2f} s   "
          + " ".join(f"{value:.2f}" for value in drawn))
    verdict = "within" if max(drawn) < TARGET else "OVER"
    print(f"  target {TARGET:.1f} s: {verdict} (every load)")
    errors = [error for run in runs for error in run["errors"]]
    if errors:
        print(f"  console errors: {errors[:3]}")


# --- (b) an idle lab with and without the server ----------------------------------------------

def window(lab: str, seconds: float, server: Server | None) -> dict:
    hosts = floor.lab_containers(lab)
    pids = floor.lab_process_ids(hosts.values())
    before_machine, before_processes = floor.machine_cpu(), floor.process_ticks()
    before = {host: floor.cpu_ns(pid) for host, pid in hosts.items()}
    served_before = server.cpu_seconds() if server else 0.0
    started = time.perf_counter()
    time.sleep(seconds)
    elapsed = time.perf_counter() - started
    served_after = server.cpu_seconds() if server else 0.0
    after_machine, after_processes = floor.machine_cpu(), floor.process_ticks()
    after = {host: floor.cpu_ns(pid) for host, pid in hosts.items()}
    ui_pids = {server.process.pid} if server else set()
    engine, _others = floor.cpu_by_process(before_processes, after_processes, pids | ui_pids)
    return {"seconds": elapsed,
            "machine": (after_machine[0] - before_machine[0]) / max(1, after_machine[1] - before_machine[1]),
            "lab": sum(after[h] - before[h] for h in hosts) / 1e9, "engine": engine,
            "server": served_after - served_before}


def idle(folder: Path, seconds: float, rounds: int) -> dict[str, list[dict]]:
    text = (REPO / "lab.yaml").read_text().replace("name: campus", "name: bench-ui-idle")
    text = text.replace("10.10.", f"10.{IDLE_OCTET}.").replace(r"10\.10\.", rf"10\.{IDLE_OCTET}\.")
    path = folder / "idle" / "lab.yaml"
    path.parent.mkdir()
    path.write_text(text)
    lab = read_lab(path)
    engine = open_engine(lab.topology)
    ensure_host_image(engine.image_client, say)
    lifecycle.up(lab.topology, engine, say)
    found: dict[str, list[dict]] = {"without": [], "with": []}
    try:
        time.sleep(3)   # the last of coming up (readiness probes' connections) settles
        for number in range(rounds):
            say(f"idle window {number + 1}/{rounds} without labctl ui, {seconds:.0f} s")
            found["without"].append(window(lab.topology.name, seconds, None))
            server = Server(path)
            try:
                time.sleep(2)   # its start (reading the lab, subscribing) is not idling
                say(f"idle window {number + 1}/{rounds} with labctl ui serving, no page open, {seconds:.0f} s")
                found["with"].append(window(lab.topology.name, seconds, server))
            finally:
                server.stop()
    finally:
        lifecycle.down(lab.topology, engine, say)
    return found


def report_idle(found: dict[str, list[dict]]) -> None:
    cores = os.cpu_count() or 1

    def median(kind: str, key: str) -> float:
        return statistics.median(run[key] for run in found[kind])
    seconds = median("without", "seconds")
    print(f"\nAn idle lab (the default lab, 5 hosts), no page open: medians of {len(found['without'])} windows "
          f"of {seconds:.0f} s each ({cores} cores)")
    print(f"  {'':38}{'without ui':>12}{'with ui':>12}{'difference':>12}")
    for label, key, scale, unit in (("machine busy (/proc/stat)", "machine", 100, "%"),
                                    ("the lab's containers (cgroup CPU)", "lab", 1000, " ms"),
                                    ("the engine (dockerd, containerd, shims)", "engine", 1000, " ms"),
                                    ("labctl ui itself", "server", 1000, " ms")):
        without, with_ui = median("without", key) * scale, median("with", key) * scale
        print(f"  {label:38}{without:>10.2f}{unit:<2}{with_ui:>10.2f}{unit:<2}{with_ui - without:>+10.2f}{unit}")
    print("  (CPU time used during each window; the machine's share is of all its cores)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=ROUNDS, help="idle windows without, and with, the server")
    parser.add_argument("--window", type=float, default=WINDOW, help="seconds of one idle window")
    parser.add_argument("--skip-idle", action="store_true", help="measure the 100-host page only")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="labctl-bench-ui-") as folder:
        say("the 100-host lab's page")
        report_big(big_page(Path(folder)))
        if not args.skip_idle:
            report_idle(idle(Path(folder), args.window, args.rounds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
