"""labctl: bring a lab.yaml up as containers, check its exchanges, and tear it down."""

from __future__ import annotations

import argparse

from .. import __version__
from ..model.faults import HOST_ACTIONS
from . import verbs
from .formats import result_formats
from .graphs import graph_formats

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
    parser.add_argument("--no-wait", action="store_true",
                        help="refuse at once, instead of waiting, when another labctl is working on the lab")
    parser.add_argument("--version", action="version", version=f"labctl {__version__}")
    verb_parsers = parser.add_subparsers(dest="verb", metavar="VERB", required=True)

    def verb(name: str, handler, help: str) -> argparse.ArgumentParser:
        sub = verb_parsers.add_parser(name, help=help, description=help.replace("%%", "%"))
        sub.set_defaults(handler=handler)
        # As people type them: `labctl validate --engine swarm lab.yaml` too. SUPPRESS
        # keeps a value given before the verb when none is given after it.
        sub.add_argument("--engine", metavar="ENGINE", default=argparse.SUPPRESS,
                         help="as before the verb: compose, swarm or ssh://user@host")
        sub.add_argument("--cluster", metavar="FILE", default=argparse.SUPPRESS,
                         help="as before the verb: the cluster file a Swarm lab runs on")
        return sub

    def lab_file_argument(sub: argparse.ArgumentParser) -> argparse.ArgumentParser:
        """Verbs with no other positional argument take the lab file after them too."""
        sub.add_argument("lab_file", nargs="?", metavar="LAB_FILE",
                         help="the lab file, as -f gives it (default: ./lab.yaml or $LABCTL_FILE)")
        return sub

    lab_file_argument(verb("validate", verbs.validate, "check the lab file; touches nothing"))
    lab_file_argument(verb("render", verbs.render,
                           "write compose/<lab>.yaml, a Compose file that runs without labctl"))
    sub = verb("grade", verbs.grade, "run the lab (-f FILE, or ./lab.yaml) against each student's folder in "
               "SUBMISSIONS: into --out, a CSV row and an HTML summary per student, a gradebook CSV, and each "
               "student's report, JUnit, Gradescope and PrairieLearn results")
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
    sub = verb("schema", verbs.schema, "print the lab file's JSON Schema, for editors (generated from "
               "the validator's own definitions)")
    sub.add_argument("-o", "--output", metavar="FILE", help="write it to FILE instead")
    sub = verb("inspect", verbs.inspect, "a host as its kernel sees it now: interfaces and addresses of both "
               "families, routes of both families, running processes")
    sub.add_argument("host")
    sub.add_argument("--json", action="store_true", help="print it as JSON")
    sub = verb("shell", verbs.shell, "an interactive shell on a host (bash, else sh), on any engine; "
               "exits with the shell's exit code")
    sub.add_argument("host")
    sub.add_argument("command", nargs="*", metavar="-- COMMAND", help="run this instead of a shell, with a terminal")
    sub = verb("init", verbs.init, "write a working lab folder from the gallery; with no EXAMPLE, list it")
    sub.add_argument("example", nargs="?", metavar="EXAMPLE", help="an example of the gallery (labctl init lists them)")
    sub.add_argument("folder", nargs="?", metavar="FOLDER", help="a new or empty folder (default: ./EXAMPLE)")
    sub = lab_file_argument(verb("graph", verbs.graph,
                                 "draw the lab: networks as segments, hosts on them, addresses and services"))
    sub.add_argument("--format", choices=sorted(graph_formats()), help="; ".join(
        f"{item.name}: {item.summary}" for item in graph_formats().values()) + " (default: by -o's suffix, else dot)")
    sub.add_argument("-o", "--output", metavar="FILE", help="write it to FILE (its suffix picks the format)")
    sub.add_argument("--status", action="store_true",
                     help="draw the running lab: hosts coloured by state, faults, impairments, each check's last result")
    sub = lab_file_argument(verb("up", verbs.up,
                                 "start the lab (idempotent) and wait until every host is ready"))
    sub.add_argument("--timeout", type=float, default=120.0, metavar="SECONDS",
                     help="how long to wait for readiness (default 120)")
    sub = verb("check", verbs.check, "run the lab's checks; exit 0 only if all pass")
    sub.add_argument("names", nargs="*", metavar="NAME", help="run only these checks")
    sub.add_argument("-k", metavar="PATTERN", help="run only checks whose name contains PATTERN")
    sub.add_argument("--format", choices=sorted(result_formats()), default="table",
                     help="how to print the results: " + "; ".join(
                         f"{item.name}: {item.summary}" for item in result_formats().values()))
    sub.add_argument("--json", action="store_true", help="print the results as JSON (--format json)")
    sub.add_argument("--junit", metavar="FILE", help="also write the results as JUnit XML to FILE")
    sub.add_argument("--report", metavar="FILE", help="also write a report a student can read: each check, "
                     "why it failed, its hint, what the server saw (FILE.html or FILE.md)")
    sub = verb("transcript", verbs.transcript,
               "show the exchanges a host's built-in servers have served, one per line")
    sub.add_argument("host")
    sub.add_argument("--json", action="store_true", help="print the raw JSON lines")
    sub.add_argument("--tail", type=int, metavar="N", help="only the last N exchanges")
    sub = lab_file_argument(verb("status", verbs.status, "show each host's state, health and addresses"))
    sub.add_argument("--json", action="store_true", help="print the state as JSON")
    sub = verb("exec", verbs.exec_, "run a command on a host: labctl exec HOST -- CMD [ARG...]")
    sub.add_argument("host")
    sub.add_argument("command", nargs=argparse.REMAINDER)
    sub = verb("logs", verbs.logs, "print a host's output")
    sub.add_argument("host")
    sub.add_argument("-f", "--follow", action="store_true", help="keep printing new output")
    sub.add_argument("--tail", default="all", help="only the last N lines")
    sub = verb("impair", verbs.impair,
               "change a running lab's impairments: labctl impair TARGET --delay 80ms --loss 5%%")
    sub.add_argument("target", nargs="?", metavar="TARGET",
                     help="NETWORK (every host's interface on it), HOST (all its interfaces) or HOST:NETWORK")
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
    for action, text in HOST_ACTIONS.items():
        sub = verb(action, verbs.host_action, text)
        sub.add_argument("hosts", nargs="+", metavar="HOST")
        sub.set_defaults(action=action)
    for name, text in (("disconnect", "disconnect a host from its networks, or from one: HOST[:NETWORK]"),
                       ("reconnect", "reconnect a host, with its address, routes and impairments")):
        sub = verb(name, verbs.disconnect, text)
        sub.add_argument("target", metavar="HOST[:NETWORK]")
    sub = verb("partition", verbs.partition,
               "cut two sets of hosts off from each other: labctl partition A,B -- C")
    sub.add_argument("sides", nargs=argparse.REMAINDER, metavar="A,B -- C")
    lab_file_argument(verb("heal", verbs.heal, "undo every fault: partitions, disconnections, paused and stopped "
         "hosts (impairments stay; see impair --clear)"))
    sub = verb("capture", verbs.capture, "capture packets to a pcap file: "
               "labctl capture TARGET -w FILE [--for 10s] [--filter EXPR]")
    sub.add_argument("target", metavar="TARGET",
                     help="NETWORK (every frame crossing it), HOST (all its interfaces) or HOST:NETWORK")
    sub.add_argument("-w", "--write", required=True, metavar="FILE", help="the pcap file to write")
    sub.add_argument("--for", dest="duration", metavar="DURATION",
                     help="stop after this long (default: at Ctrl-C)")
    sub.add_argument("--filter", metavar="EXPR", help="a tcpdump filter, such as 'tcp port 8443'")
    sub = verb("run", verbs.run, "run a scenario: its steps bend the lab and check it between "
               "the bends; the lab is restored at the end. Without a name, list the scenarios")
    sub.add_argument("scenario", nargs="?", metavar="SCENARIO")
    lab_file_argument(verb("down", verbs.down, "remove every container, network, volume and built "
                           "image of the lab, and nothing else"))
    sub = verb("doctor", verbs.doctor, "report what this machine can run, each with its fix")
    sub.add_argument("--install", action="store_true",
                     help="as root on Debian/Ubuntu: install and start what is missing")
    sub.add_argument("--quiet", action="store_true", help="with --install: print only changes")
    sub.add_argument("--json", action="store_true", help="print the findings as JSON")
    cluster = verb_parsers.add_parser("cluster", help="the machines of a Swarm lab: join, show, leave",
                               description="Manage the machines a cluster file names (see "
                               "--cluster): 'up' joins them into one Swarm managed by the first, "
                               "'status' shows each, 'down' takes them all out of the Swarm.")
    cluster_verbs = cluster.add_subparsers(dest="cluster_verb", metavar="ACTION", required=True)
    for action, text in (("up", "join every machine into one Swarm and label its nodes"),
                         ("status", "show each machine: address, role, state, labels, engine"),
                         ("down", "every machine leaves the Swarm (workers first)")):
        sub = cluster_verbs.add_parser(action, help=text, description=text)
        sub.set_defaults(handler=verbs.cluster, action=action)
        if action == "status":
            sub.add_argument("--json", action="store_true", help="print the machines as JSON")
    image = verb_parsers.add_parser("image", help="manage the lab host image")
    image_verbs = image.add_subparsers(dest="image_verb", metavar="ACTION", required=True)
    sub = image_verbs.add_parser("build", help="build the lab host image if its recipe changed",
                                 description="Build labctl's host image: from an official Python "
                                 "image where a registry answers, else offline from this host's "
                                 "Debian mirror. Does nothing when the image is up to date.")
    sub.add_argument("--from", dest="source", choices=["auto", "registry", "mirror"], default="auto",
                     help="where the base comes from (default: auto)")
    sub.set_defaults(handler=verbs.image_build)
    return parser
