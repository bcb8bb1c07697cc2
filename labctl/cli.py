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
  labctl impair lan --delay 80ms --loss 5%   bend the network; labctl impair --show
  labctl partition alice -- web; labctl heal
  labctl run partition      run a scenario from lab.yaml, step by step
  labctl down               remove everything the lab created, and nothing else

The lab file is ./lab.yaml unless -f FILE or $LABCTL_FILE says otherwise.
"""


def progress(message: str) -> None:
    print(f"labctl: {message}", file=sys.stderr, flush=True)


def quiet(_message: str) -> None:
    pass


def lab_file(args: argparse.Namespace) -> Path:
    return Path(args.file or os.environ.get("LABCTL_FILE") or "lab.yaml")


def chosen_engine(args: argparse.Namespace) -> str | None:
    """compose or swarm from --engine (or $LABCTL_ENGINE); an ssh:// address names the
    machine, not the kind."""
    value = getattr(args, "engine", None) or os.environ.get("LABCTL_ENGINE")
    return value if value in ("compose", "swarm") else None


def load(args: argparse.Namespace):
    from .topology import load_topology
    return load_topology(lab_file(args), engine=chosen_engine(args))


def cluster_file(args: argparse.Namespace, topology=None) -> Path | None:
    """--cluster, $LABCTL_CLUSTER, or cluster.yaml beside the lab file."""
    named = getattr(args, "cluster", None) or os.environ.get("LABCTL_CLUSTER")
    if named:
        return Path(named)
    beside = (topology.folder if topology is not None else lab_file(args).resolve().parent) / "cluster.yaml"
    return beside if beside.exists() else None


def engine(args: argparse.Namespace, topology):
    """The engine the lab runs on: Compose on this machine's engine or on one reached over
    SSH, or a Swarm of the cluster file's machines (or of the one engine named by
    --engine ssh://, or this one)."""
    from .engine import ComposeEngine, docker_client
    from .ssh import parse_ssh_url, remote_client
    remote = _remote_address(args)
    if topology.engine != "swarm":
        if remote is None:
            return ComposeEngine()
        from .topology import check_files_copyable
        check_files_copyable(topology, "on an engine over SSH")
        return ComposeEngine(_remote_client(remote), image_source=_local_engine())
    from . import lab
    from .swarm import LOCAL, SwarmEngine
    file = cluster_file(args, topology)
    named = (getattr(args, "engine", None) or os.environ.get("LABCTL_ENGINE") or "").startswith("ssh://")
    if file is not None and not named:
        from .cluster import load_cluster
        runner = SwarmEngine.for_cluster(load_cluster(file), _local_engine())
    elif remote is not None:
        target = parse_ssh_url(remote)
        runner = SwarmEngine({target.host: remote_client(target)}, target.host, image_source=_local_engine())
    else:
        runner = SwarmEngine({LOCAL: docker_client()}, LOCAL)
    lab.bind_addresses(topology, runner)
    return runner


def _remote_address(args: argparse.Namespace) -> str | None:
    """The ssh:// engine address from --engine, $LABCTL_ENGINE or $DOCKER_HOST, if any."""
    address = getattr(args, "engine", None) or os.environ.get("LABCTL_ENGINE") or ""
    if address.startswith("ssh://"):
        return address
    docker_host = os.environ.get("DOCKER_HOST", "")
    return docker_host if docker_host.startswith("ssh://") else None


def _remote_client(address: str):
    """A client for the engine at an ssh:// address, its host key verified."""
    from .ssh import parse_ssh_url, remote_client
    return remote_client(parse_ssh_url(address))


def _local_engine():
    """This machine's engine, where images are built before they are copied, if one answers."""
    from .engine import docker_client
    if os.environ.get("DOCKER_HOST", "").startswith("ssh://"):
        return None
    try:
        return docker_client()
    except LabError:
        return None


def counted(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


# -- verbs --------------------------------------------------------------------------------

def cmd_validate(args) -> int:
    topology = load(args)
    print(f"{lab_file(args)}: lab '{topology.name}' is valid: {counted(len(topology.networks), 'network')}, "
          f"{counted(len(topology.hosts), 'host')}, {counted(len(topology.checks), 'check')}")
    return 0


def cmd_render(args) -> int:
    from .lab import render_lab
    topology = load(args)
    copies = topology.engine != "swarm" and _remote_address(args) is not None
    if copies:
        from .topology import check_files_copyable
        check_files_copyable(topology, "on an engine over SSH")
    output = render_lab(topology, copies_files=copies)
    print(output)
    return 0


def cmd_up(args) -> int:
    from . import lab
    topology = load(args)
    started = time.monotonic()
    lab.up(topology, engine(args, topology), progress, timeout=args.timeout)
    progress(f"lab '{topology.name}' is up in {time.monotonic() - started:.1f}s "
             f"({len(topology.hosts)} hosts); run 'labctl check'")
    return 0


def cmd_check(args) -> int:
    from . import checks, lab
    topology = load(args)
    results, seconds = lab.check(topology, engine(args, topology), args.names, args.k)
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
    entries = read_transcript(topology, engine(args, topology), args.host)
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
    from .faults import current_faults
    topology = load(args)
    runner = engine(args, topology)
    states = runner.states(topology)
    hosts = [state for state in states if state.role == "host" and state.name in topology.hosts]
    faults = current_faults(topology, runner, [s.name for s in hosts if s.state == "running"])
    if args.json:
        print(json.dumps([{**state.__dict__, "faults": faults.of(state.name) if state.role == "host" else []}
                          for state in states], indent=2))
        return 0
    if not states:
        print(f"lab '{topology.name}' is down")
        return 0
    swarm = topology.engine == "swarm"
    rows = [("HOST", *(("MACHINE",) if swarm else ()), "STATE", "HEALTH", "ADDRESSES", "SERVICES", "FAULTS")]
    # A Swarm gives addresses to running tasks only: a stopped host there has none.
    assigned = runner.addresses(topology) if swarm else None
    for state in hosts:
        host = topology.hosts[state.name]
        if assigned is not None:
            addresses = " ".join(f"{network}={address}" for network, address in
                                 sorted(assigned.get(state.name, {}).items())) or "-"
        else:
            addresses = " ".join(f"{a.network}={a.address}" for a in host.attachments)
        services = " ".join(f"{s.kind}:{s.port}" for s in host.services)
        if host.router:
            services = ("router " + services).strip()
        rows.append((state.name, *((state.machine or "-",) if swarm else ()),
                     state.state + (f" ({state.reason})" if state.reason else ""), state.health or "-",
                     addresses, services or "-", "; ".join(faults.of(state.name)) or "-"))
    missing = sorted(set(topology.hosts) - {state.name for state in hosts})
    rows += [(name, *(("-",) if swarm else ()), "missing", "-", "", "-", "-") for name in missing]
    print(_columns(rows))
    helpers = [state for state in states if state.role != "host"]
    failed = [state.name for state in helpers if state.failed]
    if helpers or not swarm:  # a Swarm's route helpers run once at up and leave nothing
        # Route helpers are done once they exit 0, sidecars once they have applied their spec.
        print(f"network helpers: {sum(state.ready for state in helpers)}/{len(helpers)} done or applied"
              + (f"; failed: {', '.join(failed)}" if failed else ""))
    return 0


def cmd_exec(args) -> int:
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        raise LabError("give a command after the host: labctl exec HOST -- CMD [ARG...]")
    topology = load(args)
    runner = engine(args, topology)
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
    for chunk in engine(args, topology).logs(topology, args.host, follow=args.follow, tail=args.tail):
        sys.stdout.buffer.write(chunk)
        sys.stdout.buffer.flush()
    return 0


def cmd_impair(args) -> int:
    from . import faults, shaping
    topology = load(args)
    runner = engine(args, topology)
    if args.show:
        return _show_impairments(topology, runner, args.json)
    values = {name: getattr(args, name) for name in shaping.KINDS if getattr(args, name) is not None}
    if args.clear and values:
        raise LabError("give either --clear or new values, not both")
    if not args.clear and not values:
        raise LabError("nothing to change: give --delay, --jitter, --loss, --rate, --duplicate, "
                       "--corrupt or --reorder, or --clear, or --show")
    if not args.target and not args.clear:
        raise LabError("name a TARGET to impair: NETWORK, HOST or HOST:NETWORK")
    live = shaping.load_live(topology)
    if args.clear:
        shaping.clear_impairment(topology, live, args.target)
    else:
        shaping.change_impairment(topology, live, args.target, values)
    faults.apply_live(topology, runner, progress, live)
    return _show_impairments(topology, runner, False)


def _show_impairments(topology, runner, as_json: bool) -> int:
    from .render import net_service
    from .shaping import KINDS, effective, format_value, load_live
    live = load_live(topology)
    states = {state.name: state for state in runner.states(topology)}
    rows = []
    for interface, impairment in effective(topology, live).items():
        sidecar = states.get(net_service(interface.host))
        host_state = states[interface.host].state if interface.host in states else "missing"
        mechanism, applied = "-", f"no (host {host_state})"
        if sidecar is not None and host_state == "running":
            report = _first_json_line(runner.helper_logs(topology, net_service(interface.host)))
            mechanism = report.get("mechanism", "-")
            applied = "yes" if sidecar.ready else f"no ({sidecar.state})"
        values = impairment.values()
        rows.append({"interface": str(interface), **{name: values.get(name) for name in KINDS},
                     "mechanism": mechanism, "applied": applied})
    if as_json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print(f"lab '{topology.name}' has no impairments")
        return 0
    header = ["INTERFACE", *[name.upper() for name in KINDS], "MECHANISM", "APPLIED"]
    table = [header] + [[row["interface"], *[format_value(name, row[name]) if row[name] else "-"
                                             for name in KINDS], row["mechanism"], row["applied"]]
                        for row in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(header))]
    for line in table:
        print("  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip())
    return 0


def _first_json_line(text: str) -> dict:
    for line in text.splitlines():
        if line.startswith("{"):
            try:
                return json.loads(line)
            except ValueError:
                return {}
    return {}


def cmd_host_action(args) -> int:
    from .faults import host_action
    topology = load(args)
    runner = engine(args, topology)
    for host in args.hosts:
        host_action(topology, runner, host, args.action, progress)
        progress(f"{args.action}: {host} is {_state_of(runner, topology, host)}")
    return 0


def _state_of(runner, topology, host: str) -> str:
    return next((state.state for state in runner.states(topology)
                 if state.role == "host" and state.name == host), "missing")


def cmd_disconnect(args) -> int:
    from .faults import disconnect, reconnect
    topology = load(args)
    runner = engine(args, topology)
    if args.verb == "disconnect":
        done = disconnect(topology, runner, args.target)
    else:
        done = reconnect(topology, runner, args.target, progress)
    verb = "disconnected" if args.verb == "disconnect" else "reconnected"
    progress(f"{verb} " + ", ".join(map(str, done)) if done else f"nothing to do: {args.target} "
             f"is already {verb}")
    return 0


def cmd_partition(args) -> int:
    from .faults import partition
    from .shaping import parse_sides
    topology = load(args)
    sides = parse_sides(topology, args.sides)
    partition(topology, engine(args, topology), sides, progress)
    progress(f"partitioned {','.join(sides[0])} from {','.join(sides[1])}; 'labctl heal' undoes it")
    return 0


def cmd_heal(args) -> int:
    from .faults import heal
    topology = load(args)
    healed = heal(topology, engine(args, topology), progress)
    progress("healed: " + "; ".join(healed) if healed else "nothing to heal")
    return 0


def cmd_capture(args) -> int:
    from .capture import Capture, capture_label
    from .images import host_tag
    from .yamlsource import parse_duration
    topology = load(args)
    seconds = parse_duration(args.duration) if args.duration else None
    if args.duration and seconds is None:
        raise LabError(f"--for: expected a duration such as 10s, got '{args.duration}'")
    capture = Capture(topology, engine(args, topology), host_tag(), args.target, args.filter)
    capture.start()
    progress(f"capturing on {capture_label(topology, args.target)}"
             + (f" for {args.duration}" if seconds else "; Ctrl-C stops"))
    try:
        if seconds is not None:
            time.sleep(seconds)  # the capture's length is what the user asked for
        else:
            signal.pause()
    except KeyboardInterrupt:
        pass
    finally:
        data = capture.stop()
    Path(args.write).write_bytes(data)
    progress(f"wrote {len(capture.packets)} packets ({len(data)} bytes) to {args.write}")
    return 0


def cmd_run(args) -> int:
    from . import scenario
    from .images import host_tag
    topology = load(args)
    if not args.scenario:
        if not topology.scenarios:
            print(f"lab '{topology.name}' declares no scenarios")
        for name, item in topology.scenarios.items():
            print(f"{name}: " + "; ".join(step.text for step in item.steps))
        return 0
    if args.scenario not in topology.scenarios:
        raise LabError(f"no scenario named '{args.scenario}'; scenarios: "
                       + (", ".join(topology.scenarios) or "none"))
    chosen = topology.scenarios[args.scenario]
    progress(f"running scenario '{chosen.name}': {len(chosen.steps)} steps")
    results = scenario.run_scenario(topology, engine(args, topology), chosen, host_tag(), progress,
                                    lambda result: print(scenario.line(result), flush=True))
    print(scenario.summary(results, chosen))
    return 0 if len(results) == len(chosen.steps) and all(result.passed for result in results) else 1


def cmd_down(args) -> int:
    from . import lab
    topology = load(args)
    removed = lab.down(topology, engine(args, topology), progress)
    parts = ([counted(removed["services"], "service")] if "services" in removed else []) + [
        counted(removed["containers"], "container"), counted(removed["networks"], "network"),
        counted(removed["volumes"], "volume")]
    if removed.get("images"):
        parts.append(counted(removed["images"], "built image"))
    if removed.get("configs"):
        parts.append(f"{removed['configs']} configs and secrets")
    if removed.get("copied images"):
        parts.append(counted(removed["copied images"], "image") + " labctl had copied there")
    progress(f"lab '{topology.name}' is down: removed {', '.join(parts)}")
    return 0


def cmd_cluster(args) -> int:
    from . import cluster
    file = cluster_file(args)
    if file is None:
        raise LabError("no cluster file: give --cluster FILE, set $LABCTL_CLUSTER, or put "
                       "cluster.yaml beside the lab file")
    machines = cluster.load_cluster(file)
    if args.action == "up":
        cluster.up(machines, progress)
    elif args.action == "down":
        cluster.down(machines, progress)
        return 0
    rows = cluster.status(machines)
    if getattr(args, "json", False):
        print(json.dumps([row.__dict__ for row in rows], indent=2))
        return 0
    table = [("MACHINE", "ADDRESS", "ROLE", "STATE", "AVAILABILITY", "ENGINE", "LABELS")]
    table += [(r.machine, r.address, r.role, r.state + (f" ({r.reason})" if r.reason else ""),
               r.availability, r.engine, " ".join(f"{k}={v}" for k, v in r.labels.items()) or "-")
              for r in rows]
    print(_columns(table))
    return 0 if all(r.state == "ready" for r in rows) else 1


def _columns(rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip()
                     for row in rows)


def cmd_doctor(args) -> int:
    from . import doctor
    if args.install:
        changed = doctor.install(progress)
        progress("changed: " + "; ".join(changed) if changed else "nothing to change")
    remote = _remote_address(args)
    if remote is not None:
        findings = doctor.diagnose(_remote_client(remote), remote)
    else:
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
    remote = _remote_address(args)
    client = _remote_client(remote) if remote is not None else docker_client()
    tag = ensure_host_image(client, progress, source=args.source)
    progress(f"done in {time.monotonic() - started:.1f}s")
    print(tag)
    return 0


# -- parser -------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="labctl", description=__doc__, epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-f", "--file", help="the lab file (default: ./lab.yaml or $LABCTL_FILE)")
    parser.add_argument("--engine", metavar="ENGINE",
                        help="compose (one machine), swarm (the machines of the cluster file), or "
                        "ssh://user@host (the engine on that machine, over SSH: Compose, or a "
                        "one-machine Swarm for a swarm lab); default: the lab file's engine:, "
                        "else compose ($LABCTL_ENGINE)")
    parser.add_argument("--cluster", metavar="FILE",
                        help="the cluster file a Swarm lab runs on (default: cluster.yaml beside "
                        "the lab file, or $LABCTL_CLUSTER)")
    parser.add_argument("--version", action="version", version=f"labctl {__version__}")
    verbs = parser.add_subparsers(dest="verb", metavar="VERB", required=True)

    def verb(name: str, handler, help: str) -> argparse.ArgumentParser:
        sub = verbs.add_parser(name, help=help, description=help.replace("%%", "%"))
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
    sub = verb("impair", cmd_impair,
               "change a running lab's impairments: labctl impair TARGET --delay 80ms --loss 5%%")
    sub.add_argument("target", nargs="?", metavar="TARGET",
                     help="NETWORK (every host's interface on it), HOST (all its interfaces) or HOST:NETWORK")
    for name, example in (("delay", "80ms"), ("jitter", "10ms"), ("loss", "5%%"), ("rate", "10mbit"),
                          ("duplicate", "1%%"), ("corrupt", "0.1%%"), ("reorder", "25%%")):
        sub.add_argument(f"--{name}", metavar="VALUE", help=f"for example {example}")
    sub.add_argument("--clear", action="store_true",
                     help="remove the target's impairments (all of them without a TARGET)")
    sub.add_argument("--show", action="store_true", help="show every interface's impairments")
    sub.add_argument("--json", action="store_true", help="with --show: print JSON")
    from .faults import HOST_ACTIONS
    for action, text in HOST_ACTIONS.items():
        sub = verb(action, cmd_host_action, text)
        sub.add_argument("hosts", nargs="+", metavar="HOST")
        sub.set_defaults(action=action)
    for name, text in (("disconnect", "disconnect a host from its networks, or from one: HOST[:NETWORK]"),
                       ("reconnect", "reconnect a host, with its address, routes and impairments")):
        sub = verb(name, cmd_disconnect, text)
        sub.add_argument("target", metavar="HOST[:NETWORK]")
    sub = verb("partition", cmd_partition,
               "cut two sets of hosts off from each other: labctl partition A,B -- C")
    sub.add_argument("sides", nargs=argparse.REMAINDER, metavar="A,B -- C")
    verb("heal", cmd_heal, "undo every fault: partitions, disconnections, paused and stopped "
         "hosts (impairments stay; see impair --clear)")
    sub = verb("capture", cmd_capture, "capture packets to a pcap file: "
               "labctl capture TARGET -w FILE [--for 10s] [--filter EXPR]")
    sub.add_argument("target", metavar="TARGET",
                     help="NETWORK (every frame crossing it), HOST (all its interfaces) or HOST:NETWORK")
    sub.add_argument("-w", "--write", required=True, metavar="FILE", help="the pcap file to write")
    sub.add_argument("--for", dest="duration", metavar="DURATION",
                     help="stop after this long (default: at Ctrl-C)")
    sub.add_argument("--filter", metavar="EXPR", help="a tcpdump filter, such as 'tcp port 8443'")
    sub = verb("run", cmd_run, "run a scenario: its steps bend the lab and check it between "
               "the bends; the lab is restored at the end. Without a name, list the scenarios")
    sub.add_argument("scenario", nargs="?", metavar="SCENARIO")
    verb("down", cmd_down, "remove every container, network, volume and built image of the lab, "
         "and nothing else")
    sub = verb("doctor", cmd_doctor, "report what this machine can run, each with its fix")
    sub.add_argument("--install", action="store_true",
                     help="as root on Debian/Ubuntu: install and start what is missing")
    sub.add_argument("--quiet", action="store_true", help="with --install: print only changes")
    sub.add_argument("--json", action="store_true", help="print the findings as JSON")
    cluster = verbs.add_parser("cluster", help="the machines of a Swarm lab: join, show, leave",
                               description="Manage the machines a cluster file names (see "
                               "--cluster): 'up' joins them into one Swarm managed by the first, "
                               "'status' shows each, 'down' takes them all out of the Swarm.")
    cluster_verbs = cluster.add_subparsers(dest="cluster_verb", metavar="ACTION", required=True)
    for action, text in (("up", "join every machine into one Swarm and label its nodes"),
                         ("status", "show each machine: address, role, state, labels, engine"),
                         ("down", "every machine leaves the Swarm (workers first)")):
        sub = cluster_verbs.add_parser(action, help=text, description=text)
        sub.set_defaults(handler=cmd_cluster, action=action)
        if action == "status":
            sub.add_argument("--json", action="store_true", help="print the machines as JSON")
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
    from docker.errors import APIError, DockerException
    from paramiko import SSHException
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
    except APIError as exc:
        # The engine answered, and said no: its reason, not a lost connection.
        print(f"labctl: error: the Docker engine refused: {exc.explanation or exc}", file=sys.stderr)
        return 2
    except (OSError, EOFError, SSHException, DockerException) as exc:
        # A connection lost under us (a machine stopped, an SSH session refused): one line.
        print(f"labctl: error: lost the connection to an engine: {exc.__class__.__name__}: {exc}",
              file=sys.stderr)
        return 2
    except BrokenPipeError:
        return 1


if __name__ == "__main__":
    sys.exit(main())
