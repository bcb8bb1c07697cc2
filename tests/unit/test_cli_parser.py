"""The command line: every verb takes the lab file the same ways (-f before or after the verb,
or as an argument), every argument says what it is, and `labctl --help` lists each verb
once, under its job."""

from __future__ import annotations

import argparse
import re
import shutil
from pathlib import Path

import pytest

from labctl.cli.context import lab_file
from labctl.cli.main import main
from labctl.cli.parser import GROUPS, build_parser
from labctl.errors import UsageError

from ..conftest import REPO

# Verbs that read a lab file, with what each needs besides it.
LAB_VERBS = {"validate": [], "render": [], "graph": [], "up": [], "status": [], "heal": [], "down": [],
             "check": [], "transcript": ["web"], "grade": ["class"], "run": [], "impair": [],
             "partition": ["a", "--", "b"], "disconnect": ["web"], "reconnect": ["web"], "stop": ["web"],
             "start": ["web"], "kill": ["web"], "pause": ["web"], "unpause": ["web"], "restart": ["web"],
             "exec": ["web", "--", "true"], "shell": ["web"], "logs": ["web"], "inspect": ["web"],
             "capture": ["web", "-w", "x.pcap"], "doctor": []}


def parsers(parser: argparse.ArgumentParser, path: str = "labctl"):
    """Every parser under `parser`, with its command line, itself first."""
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from parsers(sub, f"{path} {name}")


def verb_names() -> set[str]:
    action = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return set(action.choices)


@pytest.fixture
def in_lab_folder(tmp_path, monkeypatch) -> Path:
    shutil.copy(REPO / "lab.yaml", tmp_path / "lab.yaml")
    (tmp_path / "other.yml").write_text((REPO / "lab.yaml").read_text())
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LABCTL_FILE", raising=False)
    return tmp_path


def test_every_argument_of_every_verb_says_what_it_is():
    missing = [f"{path}: {action.option_strings or action.dest}"
               for path, parser in parsers(build_parser()) for action in parser._actions
               if not isinstance(action, (argparse._HelpAction, argparse._VersionAction))
               and not (action.help or "").strip()]
    assert missing == []
    assert len(list(parsers(build_parser()))) > 35


def test_help_lists_every_verb_once_under_its_job(capsys):
    assert main(["--help"]) == 0
    text = capsys.readouterr().out
    sections = re.split(r"\n(?=\S[^\n]*:\n)", text)
    listed: dict[str, list[str]] = {}
    for section in sections:
        title, _, body = section.partition(":\n")
        group = next((name for name in GROUPS if title.startswith(name + " (")), None)
        if group is not None:
            listed[group] = re.findall(r"^  (\S+)  ", body, re.MULTILINE)
    assert set(listed) == set(GROUPS)
    every = [verb for verbs in listed.values() for verb in verbs]
    assert sorted(every) == sorted(verb_names())          # each verb in exactly one group
    assert {"init", "validate", "up", "down", "ls", "status"} <= set(listed["lab"])
    assert {"exec", "shell", "logs"} <= set(listed["hosts"])
    assert "Exit codes:" in text and "labctl completion" in text


@pytest.mark.parametrize("verb", sorted(LAB_VERBS))
def test_the_lab_file_goes_before_or_after_the_verb(verb, in_lab_folder):
    rest = LAB_VERBS[verb]
    given = [["-f", "other.yml", verb, *rest], [verb, "-f", "other.yml", *rest], [verb, "--file=other.yml", *rest]]
    if verb not in ("exec", "partition"):   # there, all after HOST (or the first side) is the command's
        given.append([verb, *rest[:1], "--file", "other.yml", *rest[1:]])
    for argv in given:
        assert lab_file(build_parser().parse_args(argv)) == Path("other.yml"), argv
    assert lab_file(build_parser().parse_args([verb, *rest])) == Path("lab.yaml")
    # As an argument: the verb's LAB_FILE, or a first argument naming an existing .yaml/.yml file;
    # down's is LAB_FILE or NAME, told apart when it runs.
    if verb == "down":
        assert build_parser().parse_args([verb, "other.yml"]).target == "other.yml"
    elif verb != "doctor":
        assert lab_file(build_parser().parse_args([verb, "other.yml", *rest])) == Path("other.yml")


def test_a_first_argument_is_the_lab_file_only_when_it_names_one(in_lab_folder):
    parse = build_parser().parse_args
    checked = parse(["check", "lab.yaml", "tcp echo", "udp echo"])
    assert (checked.lab_file, checked.names) == ("lab.yaml", ["tcp echo", "udp echo"])
    assert parse(["check", "gone.yaml"]).names == ["gone.yaml"]              # no such file: a check name
    assert parse(["check", "-k", "echo", "lab.yaml"]).lab_file == "lab.yaml"  # an option's value is skipped
    assert parse(["check", "--form", "json", "lab.yaml"]).lab_file == "lab.yaml"   # as argparse abbreviates
    executed = parse(["exec", "other.yml", "alice", "--", "cat", "lab.yaml"])
    assert (executed.lab_file, executed.host, executed.command) == ("other.yml", "alice", ["cat", "lab.yaml"])
    assert getattr(parse(["exec", "alice", "--", "cat", "lab.yaml"]), "lab_file", None) is None
    assert parse(["run", "lab.yaml", "partition"]).scenario == "partition"
    assert parse(["run", "lab.yaml"]).scenario is None
    assert parse(["grade", "lab.yaml", "class"]).submissions == "class"
    with pytest.raises(UsageError, match="two lab files"):
        lab_file(parse(["-f", "other.yml", "check", "lab.yaml"]))
    assert lab_file(parse(["-f", "lab.yaml", "check", "lab.yaml"])) == Path("lab.yaml")


def test_the_engine_and_the_rest_go_before_or_after_the_verb(in_lab_folder):
    parse = build_parser().parse_args
    assert parse(["--engine", "swarm", "up"]).engine == "swarm"
    assert parse(["up", "--engine", "swarm"]).engine == "swarm"
    assert parse(["--engine", "swarm", "up", "--engine", "compose"]).engine == "compose"
    assert parse(["up"]).engine is None and parse(["up"]).no_wait is False
    assert parse(["down", "--no-wait"]).no_wait is True
    assert parse(["ls", "--engine", "swarm", "--cluster", "c.yaml"]).cluster == "c.yaml"
    assert parse(["logs", "-F", "web"]).follow and parse(["logs", "web", "-f", "lab.yaml"]).file == "lab.yaml"


def test_environment_and_default_lab_file(in_lab_folder, monkeypatch):
    monkeypatch.setenv("LABCTL_FILE", "from-env.yaml")
    assert lab_file(build_parser().parse_args(["check"])) == Path("from-env.yaml")
    assert lab_file(build_parser().parse_args(["check", "-f", "other.yml"])) == Path("other.yml")
