"""How the CLI shows what operations return: one table printer, and a view per kind of
answer. Nothing here asks the engine anything. Whatever came from elsewhere (a host's
output, a server's answer, a lab file's names) reaches the terminal through
labctl.text: one line each, its controls written out."""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from typing import Any, Iterable

from ..model.impairment import KINDS, format_value
from ..text import json_safe, one_line


def columns(rows: Iterable[Iterable[str]]) -> str:
    """Rows as aligned columns, two spaces apart; the last column is not padded. Each cell
    is one line, its controls written out: a cell cannot move the cursor or break the row."""
    cells = [tuple(one_line(cell) for cell in row) for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(cells[0]))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip()
                     for row in cells)


def counted(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def as_json(value: Any) -> str:
    return json.dumps(json_safe(value), indent=2)


def validated(file: str, lab) -> str:
    topology = lab.topology
    return (f"{one_line(file)}: lab '{topology.name}' is valid: {counted(len(topology.networks), 'network')}, "
            f"{counted(len(topology.hosts), 'host')}, {counted(len(lab.checks), 'check')}")


def status(report) -> str:
    """ops.status.LabStatus as a table, and a line on the network helpers."""
    if not report.running:
        return f"lab '{report.lab}' is down"
    machines = report.shows_machines
    rows = [("HOST", *(("MACHINE",) if machines else ()), "STATE", "HEALTH", "ADDRESSES", "SERVICES", "FAULTS")]
    for host in report.hosts:
        if host.state == "missing":
            rows.append((host.name, *(("-",) if machines else ()), "missing", "-", "", "-", "-"))
            continue
        addresses = " ".join(f"{network}={address}" for network, address in host.addresses.items()) or "-"
        rows.append((host.name, *((host.machine or "-",) if machines else ()),
                     host.state + (f" ({host.reason})" if host.reason else ""),
                     (host.health or "-") + (f" ({one_line(host.health_reason, 80)})" if host.health_reason else ""),
                     addresses, " ".join(host.services) or "-", "; ".join(host.faults) or "-"))
    text = columns(rows)
    if report.helpers or not machines:  # a Swarm's route helpers run once at up and leave nothing
        # Route helpers are done once they exit 0, sidecars once they have applied their spec.
        failed = report.helpers_failed
        text += "\n" + one_line(f"network helpers: {report.helpers_ready}/{len(report.helpers)} done or applied"
                                 + (f"; failed: {', '.join(failed)}" if failed else ""))
    return text + "".join("\n" + one_line(f"left behind: {note}") for note in report.leftovers)


def age(seconds: float | None) -> str:
    """A duration as `ls` shows it: 42s, 7m, 3h, 2d."""
    if seconds is None:
        return "-"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s"


def running_labs(rows, engine: str) -> str:
    """`labctl ls`: ops.listing.RunningLab rows as a table, or the line saying none runs."""
    if not rows:
        return f"no lab runs on the {one_line(engine)} engine"
    return columns([("NAME", "FOLDER", "ENGINE", "HOSTS", "AGE")] + [
        (row.name, row.folder or "-", row.engine, f"{row.hosts_ready}/{row.hosts_total}", age(row.age))
        for row in rows])


def impairments(lab_name: str, rows) -> str:
    """ops.impairments.ImpairmentRow list as a table."""
    if not rows:
        return f"lab '{lab_name}' has no impairments"
    header = ["INTERFACE", *[name.upper() for name in KINDS], "MECHANISM", "APPLIED"]
    lines = [header]
    for row in rows:
        values = row.impairment.values()
        lines.append([row.interface, *[format_value(name, values[name]) if values.get(name) else "-"
                                       for name in KINDS], row.mechanism, row.applied])
    return columns(lines)


def transcript(host: str, entries: list[dict[str, Any]]) -> str:
    if not entries:
        return f"'{host}' has served no exchange yet"
    lines = []
    for entry in entries:
        stamp = time.strftime("%H:%M:%S", time.localtime(entry["time"])) + f".{int(entry['time'] % 1 * 1000):03d}"
        if entry.get("cut"):
            lines.append(f"{stamp}  the transcript was cut here: {entry.get('error', 'it reached its size cap')}")
            continue
        extra = " ".join(f"{key}={entry[key]}" for key in ("method", "path", "status", "tls_version",
                                                            "client_subject", "error") if entry.get(key))
        lines.append(f"{stamp}  {entry['service']:<8} {entry['peer']}:{entry['peer_port']} → :{entry['port']}  "
                     f"in={entry['bytes_in']} out={entry['bytes_out']}  {entry['preview']!r}  {extra}".rstrip())
    return "\n".join(one_line(line) for line in lines)


def removed(lab_name: str, counts: dict[str, int]) -> str:
    parts = ([counted(counts["services"], "service")] if "services" in counts else []) + [
        counted(counts["containers"], "container"), counted(counts["networks"], "network"),
        counted(counts["volumes"], "volume")]
    if counts.get("images"):
        parts.append(counted(counts["images"], "built image"))
    if counts.get("configs"):
        parts.append(f"{counts['configs']} configs and secrets")
    if counts.get("copied images"):
        parts.append(counted(counts["copied images"], "image") + " labctl had copied there")
    return f"lab '{lab_name}' is down: removed {', '.join(parts)}"


def scenarios(lab) -> str:
    if not lab.scenarios:
        return f"lab '{lab.name}' declares no scenarios"
    return "\n".join(one_line(f"{name}: " + "; ".join(step.text for step in item.steps))
                     for name, item in lab.scenarios.items())


def event(item) -> str:
    """An ops.events.Event as one line (its own, every text escaped)."""
    return item.line()


def event_json(item) -> str:
    """An ops.events.Event as one line of JSON: every character past ASCII written as an
    escape, so nothing in it can act on a terminal."""
    return json.dumps(item.as_json(), separators=(",", ":"))


def scenario_step(result) -> str:
    mark = "ok  " if result.passed else "FAIL"
    text = one_line(f"{result.number:>2}. {mark} {result.step.text}  ({result.seconds:.1f}s)")
    for check in result.checks:
        text += "\n        " + one_line(f"{'pass' if check.passed else 'FAIL'}  {check.name}: {check.route}"
                                        + (f" {check.reason}" if check.reason else ""))
    if result.detail and not result.checks:
        text += f"\n        {one_line(result.detail)}"
    return text


def scenario_summary(results, scenario) -> str:
    passed = sum(result.passed for result in results)
    skipped = len(scenario.steps) - len(results)
    return (f"scenario '{scenario.name}': {passed} of {len(scenario.steps)} steps passed"
            + (f", {skipped} not run" if skipped else ""))


def machines(rows) -> str:
    table = [("MACHINE", "ADDRESS", "ROLE", "STATE", "AVAILABILITY", "ENGINE", "LABELS")]
    table += [(r.machine, r.address, r.role, r.state + (f" ({r.reason})" if r.reason else ""),
               r.availability, r.engine, " ".join(f"{k}={v}" for k, v in r.labels.items()) or "-")
              for r in rows]
    return columns(table)


def findings(items) -> str:
    """doctor's findings, one a line, each lack with its fix."""
    width = max(len(f.name) for f in items)
    lines = []
    for finding in items:
        mark = "ok  " if finding.ok else ("FAIL" if finding.required else "note")
        line = f"{mark}  {finding.name.ljust(width)}  {finding.detail}"
        if finding.fix:
            line += f"  → fix: {finding.fix}"
        lines.append(one_line(line))
    return "\n".join(lines)


def dataclasses_json(items) -> str:
    return as_json([asdict(item) for item in items])


def gallery(examples: dict) -> str:
    """`labctl init` with no example: what the gallery holds, and how to take one."""
    rows = [("EXAMPLE", "WHAT IT IS")] + [(name, example.summary) for name, example in examples.items()]
    return columns(rows) + "\n\nlabctl init EXAMPLE [FOLDER]   writes a working lab folder (default ./EXAMPLE)"


def host_details(details) -> str:
    """`labctl inspect HOST`: interfaces, routes and processes, a section each."""
    lines = [f"{details.host}", ""]
    lines += columns([("INTERFACE", "STATE", "ADDRESSES")] + [
        (i.name, i.state, " ".join(i.addresses) or "-") for i in details.interfaces]).splitlines()
    lines += ["", "ROUTES", *map(one_line, details.routes), "", "PROCESSES (PID USER RSS COMMAND)",
              *map(one_line, details.processes)]
    return "\n".join(lines)
