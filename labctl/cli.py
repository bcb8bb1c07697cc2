"""labctl: bring a lab.yaml up as containers, check its exchanges, and tear it down."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path

from . import __version__
from .errors import LabError

EPILOG = """\
Typical session:
  labctl validate           check lab.yaml without touching Docker
  labctl up                 build what is missing, start the lab, wait until it is ready
  labctl check              run the lab's checks; exit 0 only if all pass
  labctl exec alice -- ping -c1 web
  labctl down               remove everything the lab created, and nothing else

The lab file is ./lab.yaml unless -f FILE or $LABCTL_FILE says otherwise.
"""


def progress(message: str) -> None:
    print(f"labctl: {message}", file=sys.stderr, flush=True)


def quiet(_message: str) -> None:
    pass


def lab_file(args: argparse.Namespace) -> Path:
    return Path(args.file or os.environ.get("LABCTL_FILE") or "lab.yaml")


def load(args: argparse.Namespace):
    from .topology import load_topology
    return load_topology(lab_file(args))


def engine():
    from .engine import ComposeEngine
    return ComposeEngine()


# -- verbs --------------------------------------------------------------------------------

def cmd_validate(args) -> int:
    topology = load(args)
    print(f"{lab_file(args)}: lab '{topology.name}' is valid: {len(topology.networks)} networks, "
          f"{len(topology.hosts)} hosts, {len(topology.checks)} checks")
    return 0


def cmd_render(args) -> int:
    from .lab import render_lab
    output = render_lab(load(args))
    print(output)
    return 0


def cmd_up(args) -> int:
    from . import lab
    topology = load(args)
    started = time.monotonic()
    lab.up(topology, engine(), progress, timeout=args.timeout)
    progress(f"lab '{topology.name}' is up in {time.monotonic() - started:.1f}s "
             f"({len(topology.hosts)} hosts); run 'labctl check'")
    return 0


def cmd_check(args) -> int:
    from . import checks, lab
    topology = load(args)
    results, seconds = lab.check(topology, engine(), args.names, args.k)
    if args.junit:
        Path(args.junit).write_text(checks.to_junit(results, seconds, topology.name))
    if args.json:
        print(checks.to_json(results, seconds))
    else:
        print(checks.table(results))
        print(checks.summary(results, seconds))
    return 0 if all(result.passed for result in results) else 1


def cmd_transcript(args) -> int:
    from .checks import read_transcript
    topology = load(args)
    entries = read_transcript(topology, engine(), args.host)
    if args.tail:
        entries = entries[-args.tail:]
    if args.json:
        for entry in entries:
            print(json.dumps(entry))
        return 0
    if not entries:
        print(f"'{args.host}' has served no exchange yet")
        return 0
    for entry in entries:
        stamp = time.strftime("%H:%M:%S", time.localtime(entry["time"])) + f".{int(entry['time'] % 1 * 1000):03d}"
        extra = " ".join(f"{key}={entry[key]}" for key in ("method", "path", "status", "tls_version",
                                                            "client_subject", "error") if entry.get(key))
        print(f"{stamp}  {entry['service']:<8} {entry['peer']}:{entry['peer_port']} → :{entry['port']}  "
              f"in={entry['bytes_in']} out={entry['bytes_out']}  {entry['preview']!r}  {extra}".rstrip())
    return 0


def cmd_status(args) -> int:
    topology = load(args)
    states = engine().states(topology)
    if args.json:
        print(json.dumps([state.__dict__ for state in states], indent=2))
        return 0
    if not states:
        print(f"lab '{topology.name}' is down")
        return 0
    rows = [("HOST", "STATE", "HEALTH", "ADDRESSES", "SERVICES")]
    for state in states:
        if state.role != "host":
            continue
        host = topology.hosts.get(state.name)
        addresses = " ".join(f"{a.network}={a.address}" for a in host.attachments) if host else ""
        services = " ".join(f"{s.kind}:{s.port}" for s in host.services) if host else ""
        if host and host.router:
            services = ("router " + services).strip()
        rows.append((state.name, state.state, state.health or "-", addresses, services))
    missing = sorted(set(topology.hosts) - {state.name for state in states if state.role == "host"})
    rows += [(name, "missing", "-", "", "") for name in missing]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        print("  ".join(row[i].ljust(widths[i]) for i in range(4)) + "  " + row[4])
    helpers = [state for state in states if state.role != "host"]
    failed = [state.name for state in helpers if state.failed]
    print(f"network helpers: {len(helpers) - len(failed)}/{len(helpers)} done"
          + (f"; failed: {', '.join(failed)}" if failed else ""))
    return 0


def cmd_exec(args) -> int:
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        raise LabError("give a command after the host: labctl exec HOST -- CMD [ARG...]")
    topology = load(args)
    runner = engine()
    for stdout, stderr in runner.exec_stream(topology, args.host, command):
        if stdout:
            sys.stdout.buffer.write(stdout)
            sys.stdout.buffer.flush()
        if stderr:
            sys.stderr.buffer.write(stderr)
            sys.stderr.buffer.flush()
    return runner.last_exit_code


def cmd_logs(args) -> int:
    topology = load(args)
    for chunk in engine().logs(topology, args.host, follow=args.follow, tail=args.tail):
        sys.stdout.buffer.write(chunk)
        sys.stdout.buffer.flush()
    return 0


def cmd_down(args) -> int:
    from . import lab
    topology = load(args)
    removed = lab.down(topology, engine(), progress)
    progress(f"lab '{topology.name}' is down: removed {removed['containers']} containers, "
             f"{removed['networks']} networks, {removed['volumes']} volumes"
             + (f", {removed['images']} built images" if removed.get("images") else ""))
    return 0


def cmd_doctor(args) -> int:
    from . import doctor
    if args.install:
        changed = doctor.install(progress)
        progress("changed: " + "; ".join(changed) if changed else "nothing to change")
    findings = doctor.diagnose()
    if args.json:
        print(json.dumps([finding.__dict__ for finding in findings], indent=2))
    elif not (args.install and args.quiet):
        print(doctor.report(findings))
    return 0 if doctor.healthy(findings) else 1


def cmd_image_build(args) -> int:
    from .engine import docker_client
    from .images import ensure_host_image
    started = time.monotonic()
    tag = ensure_host_image(docker_client(), progress, source=args.source)
    progress(f"done in {time.monotonic() - started:.1f}s")
    print(tag)
    return 0


# -- parser -------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="labctl", description=__doc__, epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-f", "--file", help="the lab file (default: ./lab.yaml or $LABCTL_FILE)")
    parser.add_argument("--version", action="version", version=f"labctl {__version__}")
    verbs = parser.add_subparsers(dest="verb", metavar="VERB", required=True)

    def verb(name: str, handler, help: str) -> argparse.ArgumentParser:
        sub = verbs.add_parser(name, help=help, description=help)
        sub.set_defaults(handler=handler)
        return sub

    verb("validate", cmd_validate, "check the lab file; touches nothing")
    verb("render", cmd_render, "write compose/<lab>.yaml, a Compose file that runs without labctl")
    sub = verb("up", cmd_up, "start the lab (idempotent) and wait until every host is ready")
    sub.add_argument("--timeout", type=float, default=120.0, metavar="SECONDS",
                     help="how long to wait for readiness (default 120)")
    sub = verb("check", cmd_check, "run the lab's checks; exit 0 only if all pass")
    sub.add_argument("names", nargs="*", metavar="NAME", help="run only these checks")
    sub.add_argument("-k", metavar="PATTERN", help="run only checks whose name contains PATTERN")
    sub.add_argument("--json", action="store_true", help="print the results as JSON")
    sub.add_argument("--junit", metavar="FILE", help="also write the results as JUnit XML to FILE")
    sub = verb("transcript", cmd_transcript,
               "show the exchanges a host's built-in servers have served, one per line")
    sub.add_argument("host")
    sub.add_argument("--json", action="store_true", help="print the raw JSON lines")
    sub.add_argument("--tail", type=int, metavar="N", help="only the last N exchanges")
    sub = verb("status", cmd_status, "show each host's state, health and addresses")
    sub.add_argument("--json", action="store_true", help="print the state as JSON")
    sub = verb("exec", cmd_exec, "run a command on a host: labctl exec HOST -- CMD [ARG...]")
    sub.add_argument("host")
    sub.add_argument("command", nargs=argparse.REMAINDER)
    sub = verb("logs", cmd_logs, "print a host's output")
    sub.add_argument("host")
    sub.add_argument("-f", "--follow", action="store_true", help="keep printing new output")
    sub.add_argument("--tail", default="all", help="only the last N lines")
    verb("down", cmd_down, "remove every container, network, volume and built image of the lab, "
         "and nothing else")
    sub = verb("doctor", cmd_doctor, "report what this machine can run, each with its fix")
    sub.add_argument("--install", action="store_true",
                     help="as root on Debian/Ubuntu: install and start what is missing")
    sub.add_argument("--quiet", action="store_true", help="with --install: print only changes")
    sub.add_argument("--json", action="store_true", help="print the findings as JSON")
    image = verbs.add_parser("image", help="manage the lab host image")
    image_verbs = image.add_subparsers(dest="image_verb", metavar="ACTION", required=True)
    sub = image_verbs.add_parser("build", help="build the lab host image if its recipe changed",
                                 description="Build labctl's host image: from an official Python "
                                 "image where a registry answers, else offline from this host's "
                                 "Debian mirror. Does nothing when the image is up to date.")
    sub.add_argument("--from", dest="source", choices=["auto", "registry", "mirror"], default="auto",
                     help="where the base comes from (default: auto)")
    sub.set_defaults(handler=cmd_image_build)
    return parser


def _terminate(signum, frame):
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    try:
        return args.handler(args)
    except LabError as exc:
        print(f"labctl: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("labctl: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 1


if __name__ == "__main__":
    sys.exit(main())
