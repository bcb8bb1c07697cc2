"""labctl: bring a lab.yaml up as containers, check its exchanges, and tear it down."""

from __future__ import annotations

import argparse
import shutil
import textwrap
from typing import Any, Callable, Sequence

from .. import __version__
from ..errors import EXIT_CODES, PASSED_THROUGH
from ..model.faults import HOST_ACTIONS
from . import completion, verbs
from .context import names_lab_file
from .formats import result_formats
from .graphs import graph_formats

# The verbs by job, in the order `labctl --help` lists them.
LAB, CHECKS, BENDING, HOSTS, MACHINE = "lab", "checks", "bending the network", "hosts", "this machine"
GROUPS = {
    LAB: "write, check, start, list and remove labs",
    CHECKS: "check the exchanges, grade a class, run scenarios",
    BENDING: "impair, cut and break a running lab, and undo it",
    HOSTS: "reach a running lab's hosts",
    MACHINE: "what runs the labs, and labctl itself",
}

LAB_FILE_RULE = """\
The lab file: -f FILE (or --file FILE), before or after the verb; else given as an argument:
verbs that take no other argument (validate render graph up status events heal) take it as
LAB_FILE, and the others as their first argument when that argument names an existing file
ending .yaml or .yml (labctl check lab.yaml "web health", labctl exec lab.yaml alice -- ip a); down takes
LAB_FILE or the NAME of a running lab (a file if it exists or ends .yaml or .yml). Else
$LABCTL_FILE, else ./lab.yaml. The engine: --engine, before or after the verb, else the lab
file's engine:, else compose."""

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
  labctl ls                 the labs running on this machine; labctl down NAME removes one

""" + LAB_FILE_RULE + """

Exit codes:
""" + "\n".join(textwrap.fill(f"{item.code:>3}  {item.name}: {item.meaning}", 92, initial_indent="  ",
                               subsequent_indent=" " * 7) for item in EXIT_CODES) + f"""
  {PASSED_THROUGH}.

Shell completion: labctl completion bash|zsh|fish prints the script, and how to install it.
"""


class Parser(argparse.ArgumentParser):
    """argparse, where a verb that takes other arguments also takes the lab file as its
    first one, when that names an existing .yaml or .yml file (LAB_FILE_RULE)."""

    leading_file = False

    def parse_known_args(self, args: Sequence[str] | None = None,    # type: ignore[override]
                         namespace: argparse.Namespace | None = None) -> tuple[argparse.Namespace, list[str]]:
        if self.leading_file and args:
            args = list(args)
            index = self._first_argument(args)
            if index is not None and names_lab_file(args[index]):
                namespace = namespace if namespace is not None else argparse.Namespace()
                namespace.lab_file = args.pop(index)
        return super().parse_known_args(args, namespace)

    def _first_argument(self, args: list[str]) -> int | None:
        """Where the first argument that is not an option or an option's value is."""
        value_follows = False
        for index, token in enumerate(args):
            if value_follows:
                value_follows = False
            elif token == "--":
                return None
            elif token.startswith("-") and len(token) > 1:
                value_follows = self._takes_value(token)
            else:
                return index
        return None

    def _takes_value(self, token: str) -> bool:
        """Whether the option `token` is followed by its value as the next argument."""
        if token.startswith("--"):
            if "=" in token:
                return False
            action = self._option_string_actions.get(token)
            if action is None:   # argparse takes a long option's unambiguous prefix
                matches = {id(item): item for option, item in self._option_string_actions.items()
                           if option.startswith(token)}
                action = next(iter(matches.values())) if len(matches) == 1 else None
        else:
            action = self._option_string_actions.get(token[:2])
            if action is not None and len(token) > 2:
                return False     # -kPATTERN: the value is attached
        return action is not None and action.nargs != 0


def _common_options(parser: argparse.ArgumentParser, lab_file: bool, top: bool) -> None:
    """-f, --engine, --cluster and --no-wait, before the verb (top) or after it. After it,
    their defaults are SUPPRESS: a value given before the verb stays when none is given
    after it."""
    default = None if top else argparse.SUPPRESS
    group = parser if top else parser.add_argument_group("lab and engine (before or after the verb)")
    if lab_file:
        completion.completes(group.add_argument(
            "-f", "--file", metavar="FILE", default=default,
            help="the lab file (default: $LABCTL_FILE, else ./lab.yaml)"), completion.lab_files)
    group.add_argument("--engine", metavar="ENGINE", default=default,
                       help="compose (one machine), swarm (the machines of the cluster file), or "
                       "ssh://user@host (the engine on that machine, over SSH: Compose, or a "
                       "one-machine Swarm for a swarm lab); default: the lab file's engine:, "
                       "else compose ($LABCTL_ENGINE)")
    group.add_argument("--cluster", metavar="FILE", default=default,
                       help="the cluster file a Swarm lab runs on (default: cluster.yaml beside "
                       "the lab file, or $LABCTL_CLUSTER)")
    if lab_file:
        group.add_argument("--no-wait", action="store_true", default=False if top else argparse.SUPPRESS,
                           help="refuse at once, instead of waiting, when another labctl is working on the lab")


def _serving_options(parser: argparse.ArgumentParser, title: str) -> argparse._ArgumentGroup:
    """--bind and --port of a verb that serves a page (labctl ui, grade --ui)."""
    group = parser.add_argument_group(title)
    group.add_argument("--bind", metavar="ADDRESS", default="127.0.0.1",
                       help="the address to serve on (default 127.0.0.1: this machine only); another "
                       "address lets whoever reaches it, with an address printed, use the page")
    group.add_argument("--port", type=int, metavar="PORT", default=8765,
                       help="the port to serve on (default 8765; 0: any free port, as printed)")
    return group


def _listing(verbs_of: dict[str, list[tuple[str, str]]], group: str) -> str:
    """A group's verbs, a line each (wrapped), as `labctl --help` shows them."""
    width = max(60, min(shutil.get_terminal_size().columns - 4, 100))
    column = 13
    lines = []
    for name, summary in verbs_of[group]:
        wrapped = textwrap.wrap(summary, width - column) or [""]
        lines.append(f"{name:<{column - 1}} {wrapped[0]}" if len(name) < column else f"{name}\n{'':<{column}}{wrapped[0]}")
        lines += [" " * column + line for line in wrapped[1:]]
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="labctl", description=__doc__, epilog=EPILOG,
                    formatter_class=argparse.RawDescriptionHelpFormatter)
    _common_options(parser, lab_file=True, top=True)
    parser.add_argument("--version", action="version", version=f"labctl {__version__}")
    verb_parsers = parser.add_subparsers(dest="verb", metavar="VERB", required=True,
                                         help="one of the verbs below; labctl VERB --help says more")
    verbs_of: dict[str, list[tuple[str, str]]] = {group: [] for group in GROUPS}

    def verb(name: str, handler: Callable[[argparse.Namespace], int], group: str, summary: str,
             more: str = "", lab_file: bool = True, engine: bool = True, leading_file: bool = False,
             **defaults: Any) -> Parser:
        """A verb: `summary` is its line in `labctl --help`, `more` what its own help adds."""
        description = summary + (f". {more}" if more else "")
        if leading_file:
            description += (f". Its lab file may come first: labctl {name} lab.yaml ... (an existing "
                            ".yaml or .yml file), as well as -f FILE")
        sub = verb_parsers.add_parser(name, description=description)
        sub.leading_file = leading_file
        sub.set_defaults(handler=handler, **defaults)
        verbs_of[group].append((name, summary))
        if lab_file or engine:
            _common_options(sub, lab_file=lab_file, top=False)
        return sub

    def lab_file_argument(sub: argparse.ArgumentParser) -> argparse.ArgumentParser:
        """Verbs with no other positional argument take the lab file after them as it is."""
        completion.completes(sub.add_argument(
            "lab_file", nargs="?", metavar="LAB_FILE",
            help="the lab file, as -f gives it (default: $LABCTL_FILE, else ./lab.yaml)"), completion.lab_files)
        return sub

    def host_argument(sub: argparse.ArgumentParser, help: str = "a host of the lab") -> None:
        completion.completes(sub.add_argument("host", metavar="HOST", help=help), completion.hosts)

    # The lab.
    sub: argparse.ArgumentParser = verb("init", verbs.init, LAB, "write a working lab folder from the gallery; with no EXAMPLE, list it",
               lab_file=False, engine=False)
    completion.completes(sub.add_argument("example", nargs="?", metavar="EXAMPLE",
                                          help="an example of the gallery (labctl init lists them)"),
                         completion.examples)
    sub.add_argument("folder", nargs="?", metavar="FOLDER", help="a new or empty folder (default: ./EXAMPLE)")
    lab_file_argument(verb("validate", verbs.validate, LAB, "check the lab file; touches nothing"))
    lab_file_argument(verb("render", verbs.render, LAB,
                           "write compose/<lab>.yaml, a Compose file that runs without labctl"))
    sub = lab_file_argument(verb("graph", verbs.graph, LAB,
                                 "draw the lab: networks as segments, hosts on them, addresses and services"))
    sub.add_argument("--format", choices=sorted(graph_formats()), help="; ".join(
        f"{item.name}: {item.summary}" for item in graph_formats().values()) + " (default: by -o's suffix, else dot)")
    sub.add_argument("-o", "--output", metavar="FILE", help="write it to FILE (its suffix picks the format)")
    sub.add_argument("--status", action="store_true",
                     help="draw the running lab: hosts coloured by state, faults, impairments, each check's last result")
    sub = verb("schema", verbs.schema, LAB, "print the lab file's JSON Schema, for editors",
               "It is generated from the validator's own definitions", lab_file=False, engine=False)
    sub.add_argument("-o", "--output", metavar="FILE", help="write it to FILE instead")
    sub = lab_file_argument(verb("up", verbs.up, LAB, "start the lab (idempotent) and wait until every host is ready"))
    sub.add_argument("--timeout", type=float, default=120.0, metavar="SECONDS",
                     help="how long to wait for readiness (default 120)")
    sub = verb("down", verbs.down, LAB, "remove every container, network, volume and built image of the lab, "
               "and nothing else; by NAME, a lab whose folder may be gone",
               "labctl down NAME works from any folder: it removes what carries that lab's label on the "
               "engine (see labctl ls)")
    completion.completes(sub.add_argument(
        "target", nargs="?", metavar="LAB_FILE|NAME",
        help="the lab file (a file that exists, or a name ending .yaml or .yml), else the name of a lab "
             "on the engine, as labctl ls lists it (default: the lab of $LABCTL_FILE, else ./lab.yaml)"),
        completion.lab_files)
    sub = verb("ls", verbs.ls, LAB, "list the labs on the engine: name, folder, engine, hosts ready, age",
               "It finds them by their labels, from any folder; --engine picks the engine (default compose)",
               lab_file=False)
    sub.add_argument("--json", action="store_true", help="print them as JSON")
    sub = lab_file_argument(verb("status", verbs.status, LAB, "show each host's state, health and addresses",
                                 "Health is each running host's readiness probe (its ready:, or its "
                                 "built-in servers' ports), run once now: healthy, unhealthy (why), or - "
                                 "where it has none. Exits 1 when the lab is down, a host is missing, "
                                 "unreachable or unhealthy, or a network helper failed (a host stopped or "
                                 "paused on purpose is not trouble)"))
    sub.add_argument("--json", action="store_true", help="print the state as JSON")
    sub = lab_file_argument(verb("events", verbs.events, LAB, "print what happens to the lab as it happens, "
                                 "one line per event, until Ctrl-C",
                                 "Hosts and networks (from the engine's own events), impairments, faults, "
                                 "captures, checks, scenario steps and grading, from any labctl on this "
                                 "machine. It waits for events and never polls; the lab need not be up yet"))
    sub.add_argument("--json", action="store_true",
                     help="one JSON object per line: kind, action, subject, lab, time, detail")
    sub.add_argument("--count", type=int, metavar="N", help="exit after N events (for scripts and tests)")
    sub = lab_file_argument(verb("ui", verbs.ui, LAB, "serve the running lab as a live page: topology, checks, "
                                 "faults, captures and a terminal on every host, until Ctrl-C",
                                 "It prints two addresses, each with a random token: the first acts (runs "
                                 "checks, bends the network, opens terminals), the second only watches. "
                                 "Needs the ui extra: pip install 'labctl-net[ui]'"))
    _serving_options(sub, "the page")

    # Checks.
    sub = verb("check", verbs.check, CHECKS, "run the lab's checks; exit 0 only if all pass", leading_file=True)
    completion.completes(sub.add_argument("names", nargs="*", metavar="NAME",
                                          help="run only these checks (default: all)"), completion.checks)
    sub.add_argument("-k", metavar="PATTERN", help="run only checks whose name contains PATTERN")
    sub.add_argument("--format", choices=sorted(result_formats()), default="table",
                     help="how to print the results: " + "; ".join(
                         f"{item.name}: {item.summary}" for item in result_formats().values()))
    sub.add_argument("--json", action="store_true", help="print the results as JSON (--format json)")
    sub.add_argument("--junit", metavar="FILE", help="also write the results as JUnit XML to FILE")
    sub.add_argument("--report", metavar="FILE", help="also write a report a student can read: each check, "
                     "why it failed, its hint, what the server saw (FILE.html or FILE.md)")
    sub = verb("transcript", verbs.transcript, CHECKS,
               "show the exchanges a host's built-in servers have served, one per line", leading_file=True)
    host_argument(sub, "a host of the lab that runs built-in servers")
    sub.add_argument("--json", action="store_true", help="print the raw JSON lines")
    sub.add_argument("--tail", type=int, metavar="N", help="only the last N exchanges")
    sub = verb("grade", verbs.grade, CHECKS, "grade a class: run the lab against each student's folder",
               "Into --out: a CSV row and an HTML summary per student, a gradebook CSV, and each "
               "student's report, JUnit, Gradescope and PrairieLearn results. Exits 1 when some rows "
               "say the run itself failed them", leading_file=True)
    sub.add_argument("submissions", metavar="SUBMISSIONS", help="a folder holding one folder of files per student, "
                     "mounted where the lab mounts ./submission/")
    sub.add_argument("--parallel", type=int, default=1, metavar="K", help="grade K at once, each a lab instance "
                     "of its own name and subnets (default 1)")
    sub.add_argument("--timeout", type=float, default=120.0, metavar="SECONDS",
                     help="how long one submission may take, from coming up to its last check "
                     "(default 120); checks not started by then fail, and the run's bound is printed")
    sub.add_argument("--only", action="append", metavar="NAME",
                     help="grade only this submission (repeatable); the other rows come from the last run")
    sub.add_argument("--force", action="store_true",
                     help="grade again the submissions whose content has not changed since the last run")
    sub.add_argument("--out", metavar="DIR", help="where everything goes (default: the folder of --csv if given, "
                     "else grades/): grades.csv, grades.html, gradebook.csv, students/N-NAME/")
    sub.add_argument("--csv", metavar="FILE", help="the CSV of every row (default OUT/grades.csv)")
    sub.add_argument("--html", metavar="FILE", help="the HTML summary (default OUT/grades.html)")
    sub.add_argument("--id-column", metavar="NAME", help="the gradebook's ID column, as the platform names it "
                     "(for example 'SIS User ID'); default: the roster's, else 'student'")
    sub.add_argument("--roster", metavar="FILE.csv", help="maps submission folders to IDs: a header, the folder "
                     "in column 'folder' (else the first), the ID in --id-column (else the next)")
    dashboard = _serving_options(sub, "the class dashboard (--ui)")
    dashboard.add_argument("--ui", action="store_true",
                           help="serve the class dashboard while the class is graded, and after it until "
                           "Ctrl-C: each submission's state, score and failed checks as they come, its report, "
                           "its instance's topology and terminals, and grading one again "
                           "(needs pip install 'labctl-net[ui]')")
    sub = verb("run", verbs.run, CHECKS, "run a scenario: its steps bend the lab and check it between the "
               "bends; without a name, list the scenarios", "The lab is restored at the end", leading_file=True)
    completion.completes(sub.add_argument("scenario", nargs="?", metavar="SCENARIO",
                                          help="a scenario of the lab file (default: list them)"),
                         completion.scenarios)

    # Bending the network.
    sub = verb("impair", verbs.impair, BENDING,
               "change a running lab's impairments: labctl impair TARGET --delay 80ms --loss 5%",
               leading_file=True)
    completion.completes(sub.add_argument(
        "target", nargs="?", metavar="TARGET",
        help="NETWORK (every host's interface on it), HOST (all its interfaces) or HOST:NETWORK"), completion.targets)
    for name, example in (("delay", "80ms"), ("jitter", "10ms"), ("loss", "5%%"), ("rate", "10mbit"),
                          ("duplicate", "1%%"), ("corrupt", "0.1%%"), ("reorder", "25%%"),
                          ("slice", "4 (TCP payloads cut into pieces of at most 4 bytes)"),
                          ("slice_delay", "20ms (between the pieces)"),
                          ("limit", "1000 (reset each TCP connection once 1000 bytes went out)"),
                          ("reset", "2s (reset each TCP connection 2 s after it began)")):
        sub.add_argument(f"--{name.replace('_', '-')}", dest=name, metavar="VALUE", help=f"for example {example}")
    sub.add_argument("--clear", action="store_true",
                     help="remove the target's impairments (all of them without a TARGET)")
    sub.add_argument("--show", action="store_true", help="show every interface's impairments")
    sub.add_argument("--json", action="store_true", help="with --show: print JSON")
    sub = verb("partition", verbs.partition, BENDING,
               "cut two sets of hosts off from each other: labctl partition A,B -- C",
               "labctl's options go before the first side", leading_file=True)
    completion.completes(sub.add_argument("sides", nargs=argparse.REMAINDER, metavar="A,B -- C",
                                          help="the hosts of one side, comma-separated, then --, then the other's"),
                         completion.hosts)
    lab_file_argument(verb("heal", verbs.heal, BENDING, "undo every fault: partitions, disconnections, paused "
                           "and stopped hosts", "Impairments stay; impair --clear removes them"))
    for name, text in (("disconnect", "disconnect a host from its networks, or from one: HOST[:NETWORK]"),
                       ("reconnect", "reconnect a host, with its address, routes and impairments")):
        sub = verb(name, verbs.disconnect, BENDING, text, leading_file=True)
        completion.completes(sub.add_argument("target", metavar="HOST[:NETWORK]",
                                              help="a host (all its networks), or HOST:NETWORK (that one)"),
                             completion.targets)
    for action, text in HOST_ACTIONS.items():
        sub = verb(action, verbs.host_action, BENDING, text, leading_file=True, action=action)
        completion.completes(sub.add_argument("hosts", nargs="+", metavar="HOST",
                                              help=f"the hosts to {action}, in turn"), completion.hosts)

    # Hosts.
    sub = verb("exec", verbs.exec_, HOSTS, "run a command on a host: labctl exec HOST -- CMD [ARG...]",
               "labctl exits with the command's own exit code. labctl's options go before HOST: all "
               "after it is the command's", leading_file=True)
    host_argument(sub)
    sub.add_argument("command", nargs=argparse.REMAINDER, metavar="-- COMMAND",
                     help="the command and its arguments, after --")
    sub = verb("shell", verbs.shell, HOSTS, "an interactive shell on a host (bash, else sh), on any engine",
               "labctl exits with the shell's exit code", leading_file=True)
    host_argument(sub)
    sub.add_argument("command", nargs="*", metavar="-- COMMAND", help="run this instead of a shell, with a terminal")
    sub = verb("logs", verbs.logs, HOSTS, "print a host's output", leading_file=True)
    host_argument(sub)
    sub.add_argument("-F", "--follow", action="store_true", help="keep printing new output (-f is the lab file)")
    sub.add_argument("--tail", default="all", metavar="N", help="only the last N lines (default: all)")
    sub = verb("inspect", verbs.inspect, HOSTS, "a host as its kernel sees it now: interfaces and addresses of "
               "both families, routes, running processes", leading_file=True)
    host_argument(sub)
    sub.add_argument("--json", action="store_true", help="print it as JSON")
    sub = verb("capture", verbs.capture, HOSTS, "capture packets to a pcap file: "
               "labctl capture TARGET -w FILE [--for 10s] [--filter EXPR]", leading_file=True)
    completion.completes(sub.add_argument(
        "target", metavar="TARGET",
        help="NETWORK (every frame crossing it), HOST (all its interfaces) or HOST:NETWORK"), completion.targets)
    sub.add_argument("-w", "--write", required=True, metavar="FILE", help="the pcap file to write")
    sub.add_argument("--for", dest="duration", metavar="DURATION",
                     help="stop after this long (default: at Ctrl-C)")
    sub.add_argument("--filter", metavar="EXPR", help="a tcpdump filter, such as 'tcp port 8443'")

    # This machine.
    sub = verb("doctor", verbs.doctor, MACHINE, "report what this machine can run, each with its fix",
               "Exits 1 when something required is missing")
    sub.add_argument("--install", action="store_true",
                     help="as root on Debian/Ubuntu: install and start what is missing")
    sub.add_argument("--quiet", action="store_true", help="with --install: print only changes")
    sub.add_argument("--json", action="store_true", help="print the findings as JSON")
    image = verb("image", verbs.image_build, MACHINE, "manage the lab host image: image build", lab_file=False)
    image_verbs = image.add_subparsers(dest="image_verb", metavar="ACTION", required=True,
                                       help="build: build the host image if its recipe changed")
    sub = image_verbs.add_parser("build", help="build the lab host image if its recipe changed",
                                 description="Build labctl's host image: from an official Python "
                                 "image where a registry answers, else offline from this host's "
                                 "Debian mirror. Does nothing when the image is up to date.")
    _common_options(sub, lab_file=False, top=False)
    sub.add_argument("--from", dest="source", choices=["auto", "registry", "mirror"], default="auto",
                     help="where the base comes from (default: auto)")
    cluster = verb("cluster", verbs.cluster, MACHINE, "the machines of a Swarm lab: join, show, leave",
                   "Manage the machines a cluster file names (see --cluster): 'up' joins them into one "
                   "Swarm managed by the first, 'status' shows each, 'down' takes them all out of the Swarm")
    cluster_verbs = cluster.add_subparsers(dest="action", metavar="ACTION", required=True,
                                           help="up, status or down")
    for action, text in (("up", "join every machine into one Swarm and label its nodes"),
                         ("status", "show each machine: address, role, state, labels, engine; exit 1 unless "
                                    "every one is ready"),
                         ("down", "every machine leaves the Swarm (workers first)")):
        sub = cluster_verbs.add_parser(action, help=text, description=text)
        _common_options(sub, lab_file=True, top=False)
        if action == "status":
            sub.add_argument("--json", action="store_true", help="print the machines as JSON")
    sub = verb("completion", verbs.completion, MACHINE, "print the shell completion script for bash, zsh or fish",
               "It completes verbs, options, and the lab's hosts, checks, scenarios and networks; "
               "its first lines say how to install it", lab_file=False, engine=False)
    sub.add_argument("shell", choices=completion.SHELLS, help="the shell to complete for")
    sub.set_defaults(verb_names=sorted(name for group in verbs_of.values() for name, _ in group))

    for group, summary in GROUPS.items():
        parser.add_argument_group(f"{group} ({summary})", _listing(verbs_of, group))
    return parser
