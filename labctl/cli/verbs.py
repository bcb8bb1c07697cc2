"""The verbs: each reads its arguments, calls one operation and prints through one view,
and returns its exit code (labctl.errors.EXIT_CODES). Operations are imported inside each
verb so a verb loads only what it runs."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

from ..errors import FAILED, OK, LabError, UsageError
from . import views
from .context import LAB_FILE_SUFFIXES, engine_choice, engine_only, lab_file, load, locked, open_lab, progress


def validate(args) -> int:
    print(views.validated(str(lab_file(args)), load(args)))
    return OK


def render(args) -> int:
    from ..render.lab import render_lab
    print(render_lab(load(args).topology))
    return OK


def init(args) -> int:
    from ..ops.gallery import gallery, init as write_example
    if args.example is None:
        print(views.gallery(gallery()))
        return OK
    target = Path(args.folder or args.example)
    written = write_example(args.example, target)
    progress(f"wrote {len(written)} files into {target}/")
    print(f"cd {target} && labctl up && labctl check --report report.html   # then: labctl down")
    return OK


def grade(args) -> int:
    """Exit 0 when every entry of the class has its row; 1 when some rows say the run itself
    failed them (the engine, a down, a bug: not the student's doing). When nothing could be
    graded, the error's own code: 3 for a bad lab file, 4 for no engine. With --ui, the class
    dashboard is served while the class is graded and after it, until Ctrl-C; a student
    graded again from it is written into the outputs as `--only NAME --force` would."""
    from ..engines.factory import open_engine, read_lab
    from ..ops.grade import bound, grade as grade_all, submissions
    from . import gradebook
    if args.ui:
        from ..ui import require
        require()   # the extra is missing: said before anything runs
    lab = load(args)   # the lab must be sound before any student's files go into it
    choice = engine_choice(args)
    folder = Path(args.submissions)
    out = gradebook.out_folder(args.out, args.csv)
    args.csv, args.html = args.csv or str(out / gradebook.CSV), args.html or str(out / gradebook.HTML)
    roster = Path(args.roster) if args.roster else None
    if roster is not None:
        gradebook.read_roster(roster, args.id_column)   # a bad roster is said before the class runs
    count = len(args.only) if args.only else len(submissions(folder))
    progress(f"grading {count} submissions, {args.parallel} at a time: each within --timeout "
             f"{args.timeout:g}s, its longest check and its down, so the run ends within "
             f"{bound(lab, count, args.parallel, args.timeout) / 60:.0f} min")
    leave = {Path(path).resolve() for path in (out, out / gradebook.STUDENTS, out / gradebook.GRADEBOOK,
                                              args.csv, args.html)}
    reports: dict[str, Path] = {}

    def run(only: set[str] | None, force: bool) -> list:
        rows = grade_all(lambda path: read_lab(path, choice), lambda each: open_engine(each.topology, choice),
                         lab.file, folder, args.parallel, args.timeout, progress,
                         previous=gradebook.previous_rows(out), only=only, force=force, leave=leave, lab=lab)
        written = gradebook.write_all(rows, out, lab.name, args.id_column, roster, Path(args.csv), Path(args.html),
                                      say=progress)
        reports.update({row.student: out / gradebook.STUDENTS / gradebook.student_folder(row) / gradebook.REPORT
                        for row in rows})
        print(gradebook.table(rows), flush=True)
        progress(f"wrote {args.csv}, {args.html}, {out / gradebook.GRADEBOOK} and, in {out / gradebook.STUDENTS}/, "
                 f"{len(written) - 3} files: each student's report, JUnit, Gradescope and PrairieLearn results")
        return rows

    if not args.ui:
        rows = run(set(args.only) if args.only else None, args.force)
    else:
        rows = _grade_with_dashboard(args, lab, choice, run, reports)
    troubled = [row for row in rows if row.trouble]
    if troubled:
        progress(f"{len(troubled)} submissions were not graded through no fault of theirs (their rows say "
                 "why); grade them again with --only NAME")
        return FAILED
    return OK


def _grade_with_dashboard(args, lab, choice, run, reports: dict[str, Path]) -> list:
    """`run` the class with its dashboard served beside it, then serve on until Ctrl-C,
    grading one student again when the page asks; the rows as last graded."""
    import threading

    from ..ui.grade import Grading
    one_run = threading.Lock()    # the class, or one student again: never two at once
    latest: list = []

    def again(student: str) -> None:
        if not one_run.acquire(blocking=False):
            raise LabError("the class is being graded; grade one again once that ends")
        try:
            latest[:] = run({student}, True)
        finally:
            one_run.release()

    def report(student: str) -> Path | None:
        path = reports.get(student)
        return path if path is not None and path.is_file() else None

    launched = _launch_ui(args, lab, None, choice, Grading(again, report))
    launched.start()
    try:
        progress(f"the class dashboard: {launched.url('grade')} (the view-only one: "
                 f"{launched.url('grade', act=False)})")
        with one_run:
            latest[:] = run(set(args.only) if args.only else None, args.force)
        progress(f"the dashboard stays at {launched.url('grade')} until Ctrl-C; a student can be graded again from it")
        try:
            while True:
                signal.pause()
        except KeyboardInterrupt:
            pass
        if one_run.locked():
            progress("waiting for the submission being graded again: its instance goes down first")
        with one_run:
            return list(latest)
    finally:
        launched.stop()


def _launch_ui(args, lab, engine, choice, grading=None):
    """The UI's server for `lab` (its engine opened here when None), bound and watching."""
    from ..engines.factory import open_engine, read_lab
    from ..ui.launch import launch
    return launch(lab, engine if engine is not None else open_engine(lab.topology, choice),
                  lambda: read_lab(lab.file, choice), lambda each: open_engine(each.topology, choice),
                  args.bind, args.port, progress, grading)


def ui(args) -> int:
    """Serve the lab's page until Ctrl-C: the act address first, then the view-only one."""
    from ..ui import require
    require()
    from ..ui.launch import exposed
    lab, engine = open_lab(args)
    launched = _launch_ui(args, lab, engine, engine_choice(args))
    print(launched.url(), flush=True)
    print(launched.url(act=False), flush=True)
    progress(f"serving lab '{lab.name}': the first address watches and acts (checks, faults, captures, "
             f"terminals), the second only watches; a host's terminal is at {launched.base}host/HOST, every "
             f"host's at {launched.base}terminals, the class dashboard at {launched.base}grade; Ctrl-C stops")
    if exposed(args.bind):
        progress(f"--bind {args.bind}: whoever reaches this machine with an address above may use the page, "
                 "over plain HTTP; keep the addresses to yourself")
    launched.serve()
    return OK


def schema(args) -> int:
    from ..labfile.schema import lab_schema
    text = json.dumps(lab_schema(), indent=2) + "\n"
    if args.output:
        Path(args.output).write_text(text)
        progress(f"wrote {args.output}; editors read it through the first line of a lab file: "
                 f"# yaml-language-server: $schema={args.output}")
    else:
        print(text, end="")
    return OK


def inspect(args) -> int:
    from dataclasses import asdict

    from ..ops.inspect import inspect_host
    lab, engine = open_lab(args)
    details = inspect_host(lab.topology, engine, args.host)
    print(views.as_json(asdict(details)) if args.json else views.host_details(details))
    return OK


def shell(args) -> int:
    from .terminal import SHELL, relay
    lab, engine = open_lab(args)
    argv = args.command or SHELL
    terminal = engine.terminal(lab.topology, args.host, argv, {"TERM": os.environ.get("TERM") or "xterm"})
    return relay(terminal)


def graph(args) -> int:
    from .graphs import format_for, graph_formats
    chosen = graph_formats()[args.format] if args.format else (format_for(args.output) if args.output else None)
    if chosen is None:
        if args.output:
            raise LabError(f"-o {args.output}: name a file ending " + ", ".join(
                f".{suffix}" for item in graph_formats().values() for suffix in item.suffixes[:1])
                + ", or give --format")
        chosen = graph_formats()["dot"]
    if args.status:
        from ..ops.picture import overlay
        lab, engine = open_lab(args)
        drawing = chosen.render(lab.topology, overlay(lab.topology, engine))
    else:
        drawing = chosen.render(load(args).topology, None)
    if args.output:
        Path(args.output).write_bytes(drawing)
        progress(f"wrote {args.output} ({chosen.summary})")
    elif chosen.binary and sys.stdout.isatty():
        raise LabError(f"{chosen.name} is not for a terminal: write it with -o FILE")
    else:
        sys.stdout.buffer.write(drawing)
        sys.stdout.flush()
    return OK


def up(args) -> int:
    from ..ops import lifecycle
    lab, engine = open_lab(args)
    started = time.monotonic()
    _name_leftovers(lab, engine)
    with locked(args, lab, engine, "up"):
        lifecycle.up(lab.topology, engine, progress, timeout=args.timeout)
    progress(f"lab '{lab.name}' is up in {time.monotonic() - started:.1f}s "
             f"({len(lab.topology.hosts)} hosts); run 'labctl check'")
    return OK


def check(args) -> int:
    from ..ops import lifecycle
    from .formats import format_for_file, result_formats
    report = format_for_file(args.report) if args.report else None
    if args.report and report is None:
        raise LabError(f"--report {args.report}: expected a file ending .html or .md")
    lab, engine = open_lab(args)
    _name_leftovers(lab, engine)
    results, seconds = lifecycle.check(lab, engine, args.names, args.k)
    formats = result_formats()
    if args.junit:
        Path(args.junit).write_text(formats["junit"].render(results, seconds, lab.name), encoding="utf-8")
    if report is not None:
        Path(args.report).write_text(report.render(results, seconds, lab.name), encoding="utf-8")
    print(formats["json" if args.json else args.format].render(results, seconds, lab.name))
    return OK if all(result.passed for result in results) else FAILED


def _name_leftovers(lab, engine) -> None:
    from ..ops.leftovers import leftovers, renamed_labs
    for note in leftovers(lab.topology) + renamed_labs(lab.topology, engine):
        progress(note)


def transcript(args) -> int:
    from ..ops.checks import read_transcript
    lab, engine = open_lab(args)
    entries = read_transcript(lab.topology, engine, args.host)
    if args.tail:
        entries = entries[-args.tail:]
    if args.json:
        for entry in entries:
            print(json.dumps(entry))
    else:
        print(views.transcript(args.host, entries))
    return OK


def status(args) -> int:
    from ..ops.status import lab_status
    lab, engine = open_lab(args)
    report = lab_status(lab.topology, engine)
    print(views.as_json(report.as_json()) if args.json else views.status(report))
    # Stopped, killed and paused hosts are faults labctl makes on purpose: not a lab in trouble.
    trouble = [row for row in report.hosts if row.state in ("missing", "unreachable") or row.health == "unhealthy"]
    return OK if report.running and not trouble and not report.helpers_failed else FAILED


def events(args) -> int:
    from ..ops.events import subscribe
    if args.count is not None and args.count < 1:
        raise UsageError(f"--count {args.count}: give a number of events of 1 or more")
    lab, engine = open_lab(args)
    shown = 0
    with subscribe(lab.topology, engine) as subscription:
        progress(f"listening for events of lab '{lab.name}'; Ctrl-C stops")
        for event in subscription:
            print(views.event_json(event) if args.json else views.event(event), flush=True)
            shown += 1
            if shown == args.count:
                break
    return OK


def exec_(args) -> int:
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        raise LabError("give a command after the host: labctl exec HOST -- CMD [ARG...]")
    lab, engine = open_lab(args)
    for stdout, stderr in engine.exec_stream(lab.topology, args.host, command):
        for stream, chunk in ((sys.stdout, stdout), (sys.stderr, stderr)):
            if chunk:
                stream.buffer.write(chunk)
                stream.buffer.flush()
    return engine.last_exit_code


def logs(args) -> int:
    lab, engine = open_lab(args)
    for chunk in engine.logs(lab.topology, args.host, follow=args.follow, tail=args.tail):
        sys.stdout.buffer.write(chunk)
        sys.stdout.buffer.flush()
    return OK


def impair(args) -> int:
    from ..model.impairment import KINDS
    from ..ops import impairments
    lab, engine = open_lab(args)
    if not args.show:
        values = {name: getattr(args, name) for name in KINDS if getattr(args, name) is not None}
        with locked(args, lab, engine, "impair"):
            impairments.change(lab.topology, engine, args.target, values, args.clear, progress)
    rows = impairments.impairment_rows(lab.topology, engine)
    print(views.as_json([row.as_json() for row in rows]) if args.show and args.json
          else views.impairments(lab.name, rows))
    return OK


def host_action(args) -> int:
    from ..ops.faults import host_action, state_of
    lab, engine = open_lab(args)
    for host in args.hosts:
        with locked(args, lab, engine, args.action):
            host_action(lab.topology, engine, host, args.action, progress)
        progress(f"{args.action}: {host} is {state_of(lab.topology, engine, host)}")
    return OK


def disconnect(args) -> int:
    from ..ops import faults
    lab, engine = open_lab(args)
    with locked(args, lab, engine, args.verb):
        if args.verb == "disconnect":
            done = faults.disconnect(lab.topology, engine, args.target)
        else:
            done = faults.reconnect(lab.topology, engine, args.target, progress)
    verb = "disconnected" if args.verb == "disconnect" else "reconnected"
    progress(f"{verb} " + ", ".join(map(str, done)) if done
             else f"nothing to do: {args.target} is already {verb}")
    return OK


def partition(args) -> int:
    from ..model.shaping import parse_sides
    from ..ops.faults import partition
    lab, engine = open_lab(args)
    sides = parse_sides(lab.topology, args.sides)
    with locked(args, lab, engine, "partition"):
        partition(lab.topology, engine, sides, progress)
    progress(f"partitioned {','.join(sides[0])} from {','.join(sides[1])}; 'labctl heal' undoes it")
    return OK


def heal(args) -> int:
    from ..ops.faults import heal
    lab, engine = open_lab(args)
    with locked(args, lab, engine, "heal"):
        healed = heal(lab.topology, engine, progress)
    progress("healed: " + "; ".join(healed) if healed else "nothing to heal")
    return OK


def capture(args) -> int:
    from ..assets import host_tag
    from ..model.targets import capture_label
    from ..model.yamlsource import parse_duration
    from ..ops.capture import LONGEST, Capture
    seconds = parse_duration(args.duration) if args.duration else None
    if args.duration and seconds is None:
        raise LabError(f"--for: expected a duration such as 10s, got '{args.duration}'")
    lab, engine = open_lab(args)
    running = Capture(lab.topology, engine, host_tag(), args.target, args.filter,
                      deadline=seconds + 10 if seconds is not None else LONGEST)
    # The lab is held while its capture helpers start and stop, not while they listen:
    # capturing while the lab is bent is what captures are for.
    with locked(args, lab, engine, "capture"):
        running.start()
    progress(f"capturing on {capture_label(lab.topology, args.target)}"
             + (f" for {args.duration}" if seconds else "; Ctrl-C stops"))
    try:
        if seconds is not None:
            time.sleep(seconds)  # the capture's length is what the user asked for
        else:
            signal.pause()
    except KeyboardInterrupt:
        pass
    finally:
        with locked(args, lab, engine, "capture"):
            data = running.stop()
    Path(args.write).write_bytes(data)
    progress(f"wrote {len(running.packets)} packets ({len(data)} bytes) to {args.write}")
    return OK


def run(args) -> int:
    if not args.scenario:
        print(views.scenarios(load(args)))
        return OK
    from ..assets import host_tag
    from ..ops.scenarios import run_scenario
    lab = load(args)
    if args.scenario not in lab.scenarios:
        raise UsageError(f"no scenario named '{args.scenario}'; scenarios: "
                       + (", ".join(lab.scenarios) or "none"))
    lab, engine = open_lab(args)
    chosen = lab.scenarios[args.scenario]
    progress(f"running scenario '{chosen.name}': {len(chosen.steps)} steps")
    with locked(args, lab, engine, f"run {chosen.name}"):
        results = run_scenario(lab.topology, engine, chosen, host_tag(), progress,
                               lambda result: print(views.scenario_step(result), flush=True))
    print(views.scenario_summary(results, chosen))
    return OK if len(results) == len(chosen.steps) and all(result.passed for result in results) else FAILED


def down(args) -> int:
    """`down [LAB_FILE]` as ever; `down NAME` for a lab known only by its name."""
    target = args.target
    if target and not (target.endswith(LAB_FILE_SUFFIXES) or Path(target).exists()):
        from ..ops.listing import down_named
        if args.file:
            raise UsageError(f"labctl down {target}: a lab's NAME takes no lab file; leave out -f")
        removed = down_named(target, engine_only(args), progress, wait=not args.no_wait)
        progress(views.removed(target, removed))
        return OK
    from ..ops import lifecycle
    args.lab_file = target
    lab, engine = open_lab(args)
    with locked(args, lab, engine, "down"):
        removed = lifecycle.down(lab.topology, engine, progress)
    progress(views.removed(lab.name, removed))
    return OK


def ls(args) -> int:
    from ..ops.listing import engine_name, running_labs
    choice = engine_only(args)
    rows = running_labs(choice)
    print(views.as_json([row.as_json() for row in rows]) if args.json else views.running_labs(rows, engine_name(choice)))
    return OK


def completion(args) -> int:
    from .completion import script
    print(script(args.shell, args.verb_names), end="")
    return OK


def cluster(args) -> int:
    from ..engines import cluster as machines
    choice = engine_choice(args)
    if choice.cluster is None:
        raise LabError("no cluster file: give --cluster FILE, set $LABCTL_CLUSTER, or put "
                       "cluster.yaml beside the lab file")
    inventory = machines.load_cluster(choice.cluster)
    if args.action == "up":
        machines.up(inventory, progress)
    elif args.action == "down":
        machines.down(inventory, progress)
        return OK
    rows = machines.status(inventory)
    print(views.dataclasses_json(rows) if getattr(args, "json", False) else views.machines(rows))
    return OK if all(r.state == "ready" for r in rows) else FAILED


def doctor(args) -> int:
    from ..ops import doctor
    if args.install:
        changed = doctor.install(progress)
        progress("changed: " + "; ".join(changed) if changed else "nothing to change")
    findings = doctor.diagnose(engine_choice(args).address)
    if args.json:
        print(views.dataclasses_json(findings))
    elif not (args.install and args.quiet):
        print(views.findings(findings))
    return OK if doctor.healthy(findings) else FAILED


def image_build(args) -> int:
    from ..ops.lifecycle import build_image
    started = time.monotonic()
    tag = build_image(engine_choice(args).address, progress, args.source)
    progress(f"done in {time.monotonic() - started:.1f}s")
    print(tag)
    return OK
