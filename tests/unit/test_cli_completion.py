"""Shell completion, generated from the parser: `labctl completion bash|zsh|fish` prints a
script that names every verb; bash, with the script sourced, completes `labctl ch` to
`check` and a host of ./lab.yaml after `exec`; and neither --help nor a completion request
loads an engine library."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from labctl.cli.main import main
from labctl.cli.parser import build_parser

from .test_cli_parser import verb_names
from ..conftest import REPO

ENGINE_LIBRARIES = ("docker", "paramiko", "requests")


@pytest.fixture
def folder(tmp_path) -> Path:
    """A lab folder, and a `labctl` on PATH that runs this checkout's labctl."""
    shutil.copy(REPO / "lab.yaml", tmp_path / "lab.yaml")
    command = tmp_path / "bin" / "labctl"
    command.parent.mkdir()
    command.write_text(f'#!/bin/sh\nexec {sys.executable} -m labctl "$@"\n')
    command.chmod(0o755)
    return tmp_path


def environment(folder: Path, **extra: str) -> dict[str, str]:
    variables = {key: value for key, value in os.environ.items()
                 if not key.startswith(("_ARC", "_ARGCOMPLETE", "COMP_", "LABCTL_"))}
    return {**variables, "PATH": f"{folder / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
            "PYTHONPATH": str(REPO), **extra}


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_each_script_names_every_verb(shell, capsys):
    assert main(["completion", shell]) == 0
    script = capsys.readouterr().out
    words = set(script.replace("(", " ").replace(")", " ").split())
    assert verb_names() <= words and "labctl" in words
    if shell == "zsh":
        assert script.startswith("#compdef labctl\n")   # zsh reads it from the first line only
    assert main(["completion", "tcsh"]) == 2


def bash_completes(folder: Path, line: str) -> list[str]:
    """What bash offers for `line`, with labctl's script sourced, as the shell's Tab would ask."""
    script = subprocess.run([sys.executable, "-m", "labctl", "completion", "bash"], capture_output=True,
                            text=True, check=True, cwd=folder, env=environment(folder)).stdout
    (folder / "completion.bash").write_text(script)
    words = line.split(" ")
    program = f"""
source completion.bash
COMP_LINE={line!r}; COMP_POINT=${{#COMP_LINE}}
COMP_WORDS=({' '.join(repr(word) for word in words)}); COMP_CWORD={len(words) - 1}
_python_argcomplete labctl {words[-1]!r} {words[-2]!r}
printf '%s\\n' "${{COMPREPLY[@]}}"
"""
    result = subprocess.run(["bash", "--norc", "--noprofile", "-c", program], capture_output=True, text=True,
                            cwd=folder, env=environment(folder), timeout=60)
    assert result.returncode == 0, result.stderr
    return [word.strip() for word in result.stdout.splitlines() if word.strip()]


@pytest.mark.skipif(shutil.which("bash") is None, reason="no bash on this machine")
def test_bash_completes_verbs_hosts_and_checks(folder):
    assert bash_completes(folder, "labctl ch") == ["check"]
    assert set(bash_completes(folder, "labctl st")) == {"start", "status", "stop"}
    assert set(bash_completes(folder, "labctl exec a")) == {"alice"}
    # After a leading lab file: that lab's checks (bash escapes their spaces).
    assert "tcp\\ echo" in bash_completes(folder, "labctl check lab.yaml tcp")
    assert set(bash_completes(folder, "labctl impair g")) == {"gw", "gw:lan", "gw:dmz"}


def imports(folder: Path, argv: list[str], **variables: str) -> set[str]:
    """The engine libraries `labctl ARGV` imports, as Python's own import log says."""
    result = subprocess.run([sys.executable, "-X", "importtime", "-m", "labctl", *argv], capture_output=True,
                            text=True, cwd=folder, env=environment(folder, **variables), timeout=60)
    imported = {line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines() if "|" in line}
    return {name for name in imported if name.split(".")[0] in ENGINE_LIBRARIES}


def test_help_and_completion_load_no_engine_library(folder):
    assert imports(folder, ["--help"]) == set()
    answer = folder / "answer.txt"
    line = "labctl exec "
    assert imports(folder, [], _ARGCOMPLETE="1", _ARGCOMPLETE_SHELL="bash", COMP_LINE=line,
                   COMP_POINT=str(len(line)), _ARGCOMPLETE_STDOUT_FILENAME=str(answer)) == set()
    assert {"alice", "web"} <= set(answer.read_text().split("\x0b"))


def test_the_parser_does_not_need_argcomplete():
    # Completers are plain attributes: building the parser imports nothing of argcomplete.
    code = "import sys; from labctl.cli.parser import build_parser; build_parser(); print('argcomplete' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "False", result.stderr
    assert build_parser().prog == "labctl"
