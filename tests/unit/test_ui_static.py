"""The files `labctl ui` serves (labctl/ui/static/), read as files: the pages run under a
Content-Security-Policy that allows scripts from the server only, so a page holds no inline
script or event handler, and loads only files that are there, each with its token; the
page's own scripts never build markup from text; and the vendored libraries are the exact
versions ui/package-lock.json pins, each with its licence, the lock naming no place they
came from. The pages in a browser are tests/integration/test_ui.py's."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from ..conftest import REPO

STATIC = REPO / "labctl" / "ui" / "static"
PAGES = ("index.html", "terminal.html", "terminals.html", "grade.html")
# Vendored package -> the files the pages load from its folder.
VENDORED = {"@xterm/xterm": ("xterm.js", "xterm.css"), "@xterm/addon-fit": ("addon-fit.js",),
            "cytoscape": ("cytoscape.min.js",), "cytoscape-fcose": ("cytoscape-fcose.js",),
            "cose-base": ("cose-base.js",), "layout-base": ("layout-base.js",)}


class Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.inline_script = ""
        self._in_script = False

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self._in_script = tag == "script"

    def handle_endtag(self, tag):
        self._in_script = False

    def handle_data(self, data):
        if self._in_script:
            self.inline_script += data.strip()


def parsed(name: str) -> Tags:
    tags = Tags()
    tags.feed((STATIC / name).read_text())
    return tags


@pytest.mark.parametrize("name", PAGES)
def test_a_page_has_no_inline_script_and_loads_only_its_own_files_with_the_token(name):
    tags = parsed(name)
    assert tags.inline_script == ""
    assert not [(tag, key) for tag, attrs in tags.tags for key in attrs if key.startswith("on")]
    assert ("meta", {"name": "labctl-token", "content": "{{ token }}"}) in tags.tags
    assert ("meta", {"name": "labctl-can-act", "content": "{{ can_act }}"}) in tags.tags
    # No request for an icon that would carry no token (and be refused).
    assert ("link", {"rel": "icon", "href": "data:,"}) in tags.tags
    loaded = [attrs.get("src") or attrs.get("href") for tag, attrs in tags.tags
              if tag == "script" or (tag == "link" and attrs.get("rel") == "stylesheet")]
    assert loaded
    for address in loaded:
        assert address and address.startswith("static/") and address.endswith("?token={{ token }}"), address
        assert (STATIC / address.removeprefix("static/").split("?")[0]).is_file(), address
    assert all("defer" in attrs for tag, attrs in tags.tags if tag == "script")   # in order, after the page


def test_the_terminal_page_resolves_its_addresses_from_the_server_root():
    # It lives at host/NAME, one level down from the other pages.
    assert ("base", {"href": "../"}) in parsed("terminal.html").tags


@pytest.mark.parametrize("script", sorted(path.name for path in STATIC.glob("*.js")))
def test_the_pages_scripts_never_build_markup_from_text(script):
    text = (STATIC / script).read_text()
    for forbidden in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function",
                      "setAttribute(\"on", "http://", "https://"):
        assert forbidden not in text, (script, forbidden)
    assert text.lstrip().startswith("//") and '"use strict";' in text


def test_the_vendored_libraries_are_the_locked_versions_with_their_licences():
    manifest = json.loads((REPO / "ui" / "package.json").read_text())
    lock_text = (REPO / "ui" / "package-lock.json").read_text()
    lock = json.loads(lock_text)
    assert '"resolved"' not in lock_text   # where they were fetched from is no business of the repository
    readme = (STATIC / "vendor" / "README.md").read_text()
    assert set(manifest["dependencies"]) == set(VENDORED)
    for package, files in VENDORED.items():
        pinned = manifest["dependencies"][package]
        assert re.fullmatch(r"\d+\.\d+\.\d+", pinned), (package, pinned)        # exact, no range
        locked = lock["packages"][f"node_modules/{package}"]
        assert locked["version"] == pinned and locked["integrity"].startswith("sha512-")
        assert f"| `{package}`" in readme and f"| {pinned} | {locked['license']} |" in readme, package
        folder = STATIC / "vendor" / package
        assert "Permission is hereby granted" in (folder / "LICENSE").read_text()   # MIT, as locked
        assert locked["license"] == "MIT"
        for name in files:
            assert (folder / name).stat().st_size > 1000, (package, name)
    assert sorted(path.name for path in (STATIC / "vendor").iterdir()) == ["@xterm", "README.md", "cose-base",
                                                                            "cytoscape", "cytoscape-fcose",
                                                                            "layout-base"]
