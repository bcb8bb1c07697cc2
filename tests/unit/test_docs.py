"""The documentation says what the code says: the README's exit codes are labctl's, every
page is in the site's navigation, the README stays a short front door whose links resolve,
every key of the lab file is documented, the layout table names every module, and the
MkDocs hook writes the CLI reference from whatever parser exists. (`make docs`, which
`make test` runs, builds the site itself with --strict.)"""

from __future__ import annotations

import argparse
import importlib.util
import re
from pathlib import Path
from types import ModuleType

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
MAX_README_LINES = 200
# Links a Markdown reader follows: [text](target), not inside code.
LINK = re.compile(r"(?<!\!)\[[^\]\n]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.DOTALL | re.MULTILINE)
CODE_SPAN = re.compile(r"`[^`\n]*`")


def hook() -> ModuleType:
    spec = importlib.util.spec_from_file_location("labctl_docs_hook", DOCS / "hooks" / "labctl_docs.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def prose(markdown: str) -> str:
    """Markdown without its code blocks and code spans, where links are not links."""
    return CODE_SPAN.sub("", FENCE.sub("", markdown))


def table_after(markdown: str, heading: str) -> list[list[str]]:
    """The rows (cells, `\\|` read as |) of the first table under `heading`, header and rule left out."""
    section = markdown.split(f"\n{heading}\n", 1)[1]
    rows = []
    for line in section.splitlines():
        if line.startswith("|"):
            cells = [cell.strip().replace("\\|", "|") for cell in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
            rows.append(cells)
        elif rows:
            break
    return [row for row in rows[2:]]


def nav_pages(nav) -> list[str]:
    if isinstance(nav, str):
        return [nav]
    if isinstance(nav, list):
        return [page for item in nav for page in nav_pages(item)]
    if isinstance(nav, dict):
        return [page for value in nav.values() for page in nav_pages(value)]
    return []


# -- the README ------------------------------------------------------------------------------

def test_the_readme_exit_code_table_is_labctls():
    from labctl import errors
    codes = getattr(errors, "EXIT_CODES", None)
    if codes is None:
        pytest.skip("labctl.errors.EXIT_CODES does not exist yet")
    documented = table_after(README.read_text(), "## Exit codes")
    expected = [[str(item.code), item.name, item.meaning] for item in codes]
    assert documented == expected, (
        "README.md's exit-code table differs from labctl.errors.EXIT_CODES; its rows should be:\n"
        + "\n".join(f"| {code} | {name} | {meaning.replace('|', chr(92) + '|')} |" for code, name, meaning in expected))


def test_the_readme_is_a_short_front_door():
    lines = README.read_text().splitlines()
    assert len(lines) < MAX_README_LINES, f"README.md has {len(lines)} lines; the reference belongs in docs/"
    assert "make test" in README.read_text()   # CI reads the test command from here


def test_every_relative_link_in_the_readme_resolves():
    targets = LINK.findall(prose(README.read_text()))
    relative = [target for target in targets if not re.match(r"[a-z][a-z0-9+.-]*:|#", target)]
    assert relative, "the README links no page of docs/"
    missing = [target for target in relative if not (ROOT / target.split("#", 1)[0]).exists()]
    assert not missing, f"README.md links to what is not there: {missing}"


def test_the_readme_lab_is_a_valid_lab(tmp_path):
    from labctl.engines.factory import read_lab
    block = re.search(r"```yaml\n(name: .*?)```", README.read_text(), re.DOTALL)
    assert block, "the README shows no lab file"
    (tmp_path / "lab.yaml").write_text(block.group(1))
    lab = read_lab(tmp_path / "lab.yaml")
    assert lab.checks, "the README's lab checks nothing"


# -- the site --------------------------------------------------------------------------------

def test_every_page_is_in_the_nav_and_every_nav_entry_is_a_page():
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    listed = nav_pages(config["nav"])
    pages = sorted(str(path.relative_to(DOCS)) for path in DOCS.rglob("*.md")
                   if not path.relative_to(DOCS).parts[0] in ("hooks", "overrides"))
    assert sorted(set(pages) - set(listed)) == [], "pages missing from mkdocs.yml's nav"
    assert sorted(set(listed) - set(pages)) == [], "mkdocs.yml's nav names pages that do not exist"
    assert len(listed) == len(set(listed)), "a page is in the nav twice"


def test_the_site_fetches_nothing_from_elsewhere():
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    assert config["theme"]["font"] is False      # the theme's default loads Google Fonts
    assert "analytics" not in (config.get("extra") or {})
    source = (DOCS / "overrides" / "partials" / "source.html").read_text()
    assert not re.search(r'<a[^>]*data-md-component="source"', source)   # it asks GitHub's API on every view


def test_every_key_of_the_lab_file_is_documented():
    from labctl.checks.kind import COMMON_KEYS
    from labctl.checks.kinds import check_kinds
    from labctl.checks.spec import LOAD_KEYS, SERVER_KEYS
    from labctl.labfile.load import TOP_KEYS
    from labctl.labfile.scenarios import STEP_KINDS
    from labctl.model.impairment import KINDS as IMPAIRMENT_FIELDS
    from labctl.model.topology import (BUILD_KEYS, HOST_KEYS, LIMIT_KEYS, NETWORK_KEYS, READY_KEYS, RECORD_KEYS,
                                       ROUTE_KEYS, SERVICE_KEYS, SERVICE_KINDS)
    text = "\n".join((DOCS / name).read_text() for name in ("lab-file.md", "checks.md", "bending.md"))
    spans = " ".join(CODE_SPAN.findall(text))
    keys = {*TOP_KEYS, *NETWORK_KEYS, *HOST_KEYS, *LIMIT_KEYS, *SERVICE_KINDS, *RECORD_KEYS, *BUILD_KEYS,
            *ROUTE_KEYS, *READY_KEYS, *COMMON_KEYS, *LOAD_KEYS, *SERVER_KEYS, *IMPAIRMENT_FIELDS, *STEP_KINDS,
            *check_kinds(), *(key for allowed, _ in SERVICE_KEYS.values() for key in allowed),
            *(key for kind in check_kinds().values() for key in kind.keys)}
    missing = sorted(key for key in keys if not re.search(rf"(?<![\w-]){re.escape(key)}(?![\w-])", spans))
    assert not missing, f"lab file keys no page documents (in `code`): {missing}"


def test_the_layout_names_every_module_and_program():
    architecture = (DOCS / "architecture.md").read_text()
    layout = architecture[architecture.index("## Layout"):]
    modules = [path for path in (ROOT / "labctl").rglob("*.py")
               if path.name not in ("__init__.py", "__main__.py") and "_data" not in path.parts]
    missing = [str(path.relative_to(ROOT)) for path in modules
               if not re.search(rf"(?<![\w-]){re.escape(path.stem)}(?![\w-])", layout)]
    missing += [f"services/{path.name}" for path in (ROOT / "services").glob("*.py") if f"`{path.name}`" not in layout]
    assert not missing, f"docs/architecture.md's Layout leaves out: {missing}"


# -- the hook --------------------------------------------------------------------------------

def every_parser(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    found = [parser]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in {id(sub): sub for sub in action.choices.values()}.values():
                found += every_parser(sub)
    return found


def test_the_cli_reference_has_every_verb_and_option_of_the_parser():
    from labctl.cli.parser import build_parser
    parser = build_parser()
    reference = hook().cli_reference(parser)
    for each in every_parser(parser):
        assert re.search(rf"^#+ {re.escape(each.prog)} \{{ #", reference, re.MULTILINE), f"no section for {each.prog}"
        section = reference.split(f" {each.prog} {{ #", 1)[1]
        for action in each._actions:
            for option in action.option_strings:
                if option not in ("-h", "--help") and action.help != argparse.SUPPRESS:
                    assert option in section, f"{each.prog}: {option} is not in its section"


def test_the_cli_reference_follows_whatever_parser_it_is_given():
    parser = argparse.ArgumentParser(prog="tool", description="a tool")
    parser.add_argument("--global-flag", action="store_true", help="applies everywhere")
    verbs = parser.add_subparsers(dest="verb", metavar="VERB")
    run = verbs.add_parser("run", help="run it", aliases=["go"], description="run the thing")
    run.add_argument("target", metavar="TARGET", help="what | to run")
    nested = verbs.add_parser("pool", help="pools").add_subparsers(dest="action")
    nested.add_parser("drain", help="drain a pool").add_argument("--force", action="store_true", help="now")
    reference = hook().cli_reference(parser)
    for heading in ("## tool { #tool }", "## tool run { #run }", "## tool pool { #pool }",
                    "### tool pool drain { #pool-drain }"):
        assert heading in reference
    assert "`go`" in reference and "--global-flag" in reference and "`--force`" in reference
    assert "what \\| to run" in reference      # a | in help text does not split the table's row


def test_the_exit_code_page_is_labctls_table():
    from labctl import errors
    if getattr(errors, "EXIT_CODES", None) is None:
        pytest.skip("labctl.errors.EXIT_CODES does not exist yet")
    table = hook().exit_code_table()
    for item in errors.EXIT_CODES:
        assert re.search(rf"^\| {item.code} \| {re.escape(item.name)} \|", table, re.MULTILINE)


def test_a_generated_block_that_cannot_be_made_stops_the_build(tmp_path):
    module = hook()
    with pytest.raises(module.DocsError, match="no such file"):
        module.expand("<!-- labctl:include NOPE.md -->\nx\n<!-- labctl:end -->", tmp_path, "page.md")
    with pytest.raises(module.DocsError, match="unknown block"):
        module.expand("<!-- labctl:nothing -->\nx\n<!-- labctl:end -->", tmp_path, "page.md")
    (tmp_path / "NOTE.md").write_text("# Note\n")
    assert module.expand("a\n<!-- labctl:include NOTE.md -->\nfor GitHub\n<!-- labctl:end -->\nb",
                         tmp_path) == "a\n# Note\n\nb"
