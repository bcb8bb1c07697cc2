"""MkDocs hook: the pages that must say what the code says are written from the code when
the site is built, so they cannot drift from it.

A page marks a generated block with two HTML comments (invisible where the Markdown is read
as it is, on GitHub), and what stands between them is replaced:

    <!-- labctl:cli -->                the CLI reference, walked from labctl.cli.parser.build_parser
    <!-- labctl:exit-codes -->         the exit codes, from labctl.errors.EXIT_CODES
    <!-- labctl:include SECURITY.md --> a file of the repository, as it is
    ...whatever a reader of the raw file should see instead...
    <!-- labctl:end -->

The CLI reference follows the parser's own structure (every sub-parser, however deep), never
a list of verbs kept here: a verb added to the parser appears on the next build.
"""

from __future__ import annotations

import argparse
import html
import re
from pathlib import Path
from typing import Any, Callable, NamedTuple

BLOCK = re.compile(r"<!--\s*labctl:(?P<what>[\w-]+)(?:\s+(?P<argument>\S+))?\s*-->"
                   r".*?<!--\s*labctl:end\s*-->", re.DOTALL)
USAGE_WIDTH = 80
# What Markdown would read as markup in running text; the generated text is the code's, not ours.
MARKDOWN_SPECIALS = re.compile(r"([\\`*_\[\]|#])")


class DocsError(Exception):
    """A generated block that cannot be made: the build stops, naming the page and the block."""


# -- text ------------------------------------------------------------------------------------

def escaped(text: str) -> str:
    """Plain text as Markdown that shows it as it is, on one line (a table cell too)."""
    text = " ".join(text.split())
    return MARKDOWN_SPECIALS.sub(r"\\\1", html.escape(text, quote=False))


def fenced(text: str, language: str = "text") -> str:
    fence = "```"
    while fence in text:
        fence += "`"
    return f"{fence}{language}\n{text.rstrip()}\n{fence}"


# -- the CLI ---------------------------------------------------------------------------------

def _formatter(parser: argparse.ArgumentParser) -> argparse.HelpFormatter:
    """The parser's own help formatter, at a width that fits a page."""
    kind = parser.formatter_class
    if isinstance(kind, type) and issubclass(kind, argparse.HelpFormatter):
        return kind(prog=parser.prog, width=USAGE_WIDTH)
    return argparse.HelpFormatter(prog=parser.prog, width=USAGE_WIDTH)


def usage(parser: argparse.ArgumentParser) -> str:
    formatter = _formatter(parser)
    formatter.add_usage(parser.usage, parser._actions, parser._mutually_exclusive_groups)
    return formatter.format_help().strip()


def _help_of(parser: argparse.ArgumentParser, action: argparse.Action) -> str:
    """An argument's help as `--help` prints it (%(default)s and %% expanded)."""
    if not action.help:
        return ""
    try:
        return _formatter(parser)._expand_help(action)
    except (AttributeError, KeyError, TypeError, ValueError):
        return action.help.replace("%%", "%")


def _invocation(parser: argparse.ArgumentParser, action: argparse.Action) -> str:
    try:
        return _formatter(parser)._format_action_invocation(action)
    except (AttributeError, TypeError, ValueError):
        return ", ".join(action.option_strings) or str(action.metavar or action.dest)


def _shown(action: argparse.Action) -> bool:
    """What a user can type after the parser's prog, but the help."""
    return not isinstance(action, argparse._HelpAction) and action.help != argparse.SUPPRESS


def _argument_row(parser: argparse.ArgumentParser, action: argparse.Action) -> str:
    meaning = _help_of(parser, action)
    if action.choices is not None and not isinstance(action.choices, dict):
        named = [str(choice) for choice in action.choices]
        if not all(choice in meaning for choice in named):
            meaning = f"{meaning} (one of: {', '.join(named)})" if meaning else f"one of: {', '.join(named)}"
    if action.required and action.option_strings:
        meaning = f"required; {meaning}" if meaning else "required"
    return f"| `{_invocation(parser, action)}` | {escaped(meaning)} |"


def _sub_parsers(parser: argparse.ArgumentParser) -> list[tuple[str, list[str], str, argparse.ArgumentParser]]:
    """Each sub-parser of `parser` once, in the order they were added: its name, its
    aliases, its one-line help (empty where it was given none), and the parser."""
    found = []
    for action in parser._actions:
        if not isinstance(action, argparse._SubParsersAction):
            continue
        helps = {choice.dest: choice.help or "" for choice in action._choices_actions}
        names: dict[int, list[str]] = {}
        for name, sub in action.choices.items():
            names.setdefault(id(sub), []).append(name)
        for name, sub in action.choices.items():
            if names[id(sub)][0] == name:
                found.append((name, names[id(sub)][1:], helps.get(name, ""), sub))
    return found


def _listed(description: str, names: set[str]) -> list[tuple[str, str]]:
    """The verbs an argument group's description lists, one a line as `--help` shows them
    (`NAME  summary`, the summary wrapped onto indented lines), with their summaries."""
    listed: list[tuple[str, list[str]]] = []
    for line in description.splitlines():
        word, _, rest = line.strip().partition(" ")
        if line[:1].strip() and word in names:
            listed.append((word, [rest.strip()]))
        elif listed and line[:1] in (" ", "\t") and line.strip():
            listed[-1][1].append(line.strip())
    return [(name, " ".join(part for part in parts if part)) for name, parts in listed]


class VerbGroup(NamedTuple):
    title: str                    # "" for verbs no group of the parser lists
    verbs: list[tuple[str, str]]  # name and summary, in the group's order


def verb_groups(parser: argparse.ArgumentParser) -> list[VerbGroup]:
    """The parser's verbs as its `--help` groups them: argument groups that hold no
    arguments but list verbs in their description. Verbs in no such group come last."""
    subs = _sub_parsers(parser)
    names = {name for name, *_ in subs}
    groups: list[VerbGroup] = []
    for group in parser._action_groups:
        if group._group_actions or not group.description:
            continue
        listed = _listed(group.description, names)
        if listed:
            groups.append(VerbGroup(group.title or "", listed))
    placed = {name for group in groups for name, _ in group.verbs}
    rest = [(name, help_text or sub.description or "") for name, _aliases, help_text, sub in subs
            if name not in placed]
    if rest:
        groups.append(VerbGroup("other verbs" if groups else "", rest))
    return groups


def _anchor(prog: str) -> str:
    words = prog.split()[1:] or prog.split()
    return re.sub(r"[^a-z0-9-]+", "-", "-".join(words).lower()).strip("-")


def _describe(parser: argparse.ArgumentParser, text: str | None) -> list[str]:
    """A description or an epilog: as written where the parser keeps its layout, else a paragraph."""
    if not text:
        return []
    kind = parser.formatter_class
    raw = isinstance(kind, type) and issubclass(kind, argparse.RawDescriptionHelpFormatter)
    if raw and "\n" in text.strip():
        return [fenced(text.strip("\n")), ""]
    return [escaped(text.replace("%%", "%")), ""]


class _Sections:
    """The reference's Markdown, with the option groups every verb shares written once."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        # An option group (title, options) -> the anchor and prog of the section that shows it.
        self.shared: dict[tuple[str, tuple[str, ...]], tuple[str, str]] = {}

    def parser(self, parser: argparse.ArgumentParser, level: int, summary: str, aliases: list[str]) -> None:
        lines = self.lines
        anchor = _anchor(parser.prog)
        lines += [f"{'#' * min(level, 6)} {parser.prog} {{ #{anchor} }}", ""]
        description = parser.description or summary
        if description and description[:1].islower() and "\n" not in description.strip() \
                and description.split()[0].rstrip(":") != parser.prog.split()[0]:
            description = description[:1].upper() + description[1:]
        lines += _describe(parser, description)
        if aliases:
            lines += ["Also called: " + ", ".join(f"`{alias}`" for alias in aliases) + ".", ""]
        lines += [fenced(usage(parser)), ""]
        for group in parser._action_groups:
            actions = [action for action in group._group_actions if _shown(action)]
            if not actions:
                continue
            key = (group.title or "", tuple(option for action in actions
                                           for option in (action.option_strings or [str(action.dest)])))
            title = group.title or "arguments"
            if key in self.shared and group.title not in ("positional arguments", "options", "optional arguments"):
                options = ", ".join(f"`{option}`" for option in key[1])
                where, prog = self.shared[key]
                lines += [f"*{escaped(title)}*: {options}, as for [`{prog}`](#{where}).", ""]
                continue
            self.shared.setdefault(key, (anchor, parser.prog))
            lines += [f"*{escaped(title)}*", ""]
            if group.description:
                lines += [escaped(group.description), ""]
            lines += ["| argument | meaning |", "| --- | --- |"]
            lines += [_argument_row(parser, action) for action in actions]
            lines.append("")
        lines += _describe(parser, parser.epilog)

    def tree(self, parser: argparse.ArgumentParser, level: int, summary: str, aliases: list[str]) -> None:
        """`parser`, then each of its sub-parsers one level down, depth first."""
        self.parser(parser, level, summary, aliases)
        for _name, sub_aliases, help_text, sub in _sub_parsers(parser):
            self.tree(sub, level + 1, help_text, sub_aliases)


def cli_reference(parser: argparse.ArgumentParser, level: int = 2) -> str:
    """The whole command line: the top parser, then each group of verbs with a table of its
    verbs and, for each verb (and sub-verb, however deep), its usage, description and
    arguments."""
    sections = _Sections()
    sections.parser(parser, level, "", [])
    subs = {name: (aliases, help_text, sub) for name, aliases, help_text, sub in _sub_parsers(parser)}
    for group in verb_groups(parser):
        depth = level
        if group.title:
            sections.lines += [f"{'#' * level} {escaped(group.title[:1].upper() + group.title[1:])}", ""]
            depth = level + 1
        sections.lines += ["| command | does |", "| --- | --- |"]
        for name, summary in group.verbs:
            prog = subs[name][2].prog
            sections.lines.append(f"| [`{prog}`](#{_anchor(prog)}) | {escaped(summary.replace('%%', '%'))} |")
        sections.lines.append("")
        for name, summary in group.verbs:
            aliases, help_text, sub = subs[name]
            sections.tree(sub, depth, help_text or summary, aliases)
    return "\n".join(sections.lines).rstrip() + "\n"


def _cli_block(_argument: str | None, _root: Path) -> str:
    from labctl.cli.parser import build_parser
    return cli_reference(build_parser())


# -- exit codes ------------------------------------------------------------------------------

def exit_code_table() -> str:
    from labctl import errors
    codes = getattr(errors, "EXIT_CODES", None)
    if not codes:
        raise DocsError("labctl.errors has no EXIT_CODES")
    rows = ["| code | name | meaning |", "| --- | --- | --- |"]
    rows += [f"| {item.code} | {escaped(item.name)} | {escaped(item.meaning)} |" for item in codes]
    text = "\n".join(rows) + "\n"
    passed = getattr(errors, "PASSED_THROUGH", None)
    if passed:
        text += f"\nOne exception: {escaped(passed)}.\n"
    return text


def _exit_codes_block(_argument: str | None, _root: Path) -> str:
    return exit_code_table()


# -- files of the repository -----------------------------------------------------------------

def _include_block(argument: str | None, root: Path) -> str:
    if not argument:
        raise DocsError("labctl:include names no file")
    path = (root / argument).resolve()
    if root.resolve() not in path.parents or not path.is_file():
        raise DocsError(f"labctl:include {argument}: no such file in the repository")
    return path.read_text(encoding="utf-8")


BLOCKS: dict[str, Callable[[str | None, Path], str]] = {
    "cli": _cli_block,
    "exit-codes": _exit_codes_block,
    "include": _include_block,
}


def expand(markdown: str, root: Path, where: str = "a page") -> str:
    """`markdown` with every generated block replaced."""
    def replace(match: re.Match[str]) -> str:
        what, argument = match.group("what"), match.group("argument")
        make = BLOCKS.get(what)
        if make is None:
            raise DocsError(f"{where}: unknown block labctl:{what}; known: {', '.join(BLOCKS)}")
        try:
            return make(argument, root)
        except DocsError as exc:
            raise DocsError(f"{where}: {exc}") from None
    return BLOCK.sub(replace, markdown)


# -- MkDocs --------------------------------------------------------------------------------

def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    from mkdocs.exceptions import PluginError
    root = Path(config.config_file_path).parent
    try:
        return expand(markdown, root, page.file.src_uri)
    except DocsError as exc:
        raise PluginError(str(exc)) from None
