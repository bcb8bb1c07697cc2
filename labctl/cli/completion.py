"""Shell completion for bash, zsh and fish, from the parser itself (argcomplete): the shell
runs labctl with argcomplete's variables set, and labctl answers with what may come next,
then exits. Verbs and options come from the parser; hosts, checks, scenarios and networks
from the lab file the command line names (or ./lab.yaml), read as `validate` reads it, with
no engine. Nothing is imported for completion unless the shell asks for it."""

from __future__ import annotations

import argparse
import glob
import os
import textwrap
from typing import Any, Callable

from ..errors import LabError

SHELLS = ("bash", "zsh", "fish")
INSTALL = {
    "bash": 'add to ~/.bashrc:  eval "$(labctl completion bash)"',
    "zsh": 'add to ~/.zshrc, after compinit:  eval "$(labctl completion zsh)"',
    "fish": "labctl completion fish > ~/.config/fish/completions/labctl.fish",
}
REQUEST = "_ARGCOMPLETE"   # set by the scripts below when the shell asks for completions

Completer = Callable[..., list[str]]


def script(shell: str, verbs: list[str]) -> str:
    """The script that makes `shell` complete labctl's command lines."""
    try:
        import argcomplete
    except ImportError:
        raise LabError("shell completion needs the argcomplete package: pip install argcomplete") from None
    code = argcomplete.shellcode(["labctl"], shell=shell)
    header = textwrap.fill(f"labctl's completion for {shell}, generated from its parser by argcomplete: "
                           f"the verbs ({' '.join(verbs)}), their options, and the hosts, checks, "
                           "scenarios and networks of the lab file.", 88, initial_indent="# ",
                           subsequent_indent="# ") + f"\n# Install: {INSTALL[shell]}\n"
    first, newline, rest = code.partition("\n")
    if first.startswith("#compdef"):   # zsh reads it from the first line only
        return first + newline + header + rest
    return header + code


def answer(parser: argparse.ArgumentParser) -> None:
    """When the shell asks for completions, print them (on the descriptor argcomplete's
    script reads) and exit; else return at once."""
    if REQUEST not in os.environ:
        return
    try:
        import argcomplete
    except ImportError:   # an installation without it completes nothing, and says nothing
        raise SystemExit(1) from None
    argcomplete.autocomplete(parser)


def completes(action: argparse.Action, completer: Completer) -> argparse.Action:
    """Tell argcomplete what `action`'s values may be."""
    setattr(action, "completer", completer)
    return action


def _lab(parsed_args: argparse.Namespace) -> Any:
    from .context import load
    return load(parsed_args)


def _from_lab(take: Callable[[Any], list[str]]) -> Completer:
    def complete(prefix: str = "", parsed_args: argparse.Namespace | None = None, **_ignored: Any) -> list[str]:
        try:
            found = take(_lab(parsed_args or argparse.Namespace()))
        except Exception:  # a lab file that does not read completes nothing, quietly
            return []
        return [name for name in found if name.startswith(prefix)]
    return complete


hosts = _from_lab(lambda lab: list(lab.topology.hosts))
checks = _from_lab(lambda lab: [check.name for check in lab.checks])
scenarios = _from_lab(lambda lab: list(lab.scenarios))
targets = _from_lab(lambda lab: [*lab.topology.hosts, *lab.topology.networks,
                                 *(f"{host.name}:{network}" for host in lab.topology.hosts.values()
                                   for network in host.networks)])


def examples(prefix: str = "", **_ignored: Any) -> list[str]:
    from ..ops.gallery import gallery
    return [name for name in gallery() if name.startswith(prefix)]


def lab_files(prefix: str = "", **_ignored: Any) -> list[str]:
    """Folders and .yaml/.yml files: what a lab file may be."""
    found = []
    for path in sorted(glob.glob(glob.escape(prefix) + "*")):
        if os.path.isdir(path):
            found.append(path + "/")
        elif path.endswith((".yaml", ".yml")):
            found.append(path)
    return found
