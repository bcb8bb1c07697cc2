"""Pages labctl writes, loaded in headless Chromium (Debian's, driven by Playwright): what
a person opening the file would see, and every error the browser's console reported."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

# Chromium's own background traffic has nowhere to go here; these keep it from trying.
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]


@dataclass
class Loaded:
    errors: list[str] = field(default_factory=list)
    ids: set[str] = field(default_factory=set)      # the id of every element on the page
    text: str = ""
    screenshot: bytes = b""


def chromium() -> str:
    found = shutil.which("chromium")
    assert found, "Debian's chromium is not installed (make test installs it)"
    return found


def load(path: Path, tmp_path: Path) -> Loaded:
    from playwright.sync_api import sync_playwright
    loaded = Loaded()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium(), args=FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.on("console", lambda message: loaded.errors.append(message.text) if message.type == "error" else None)
            page.on("pageerror", lambda error: loaded.errors.append(str(error)))
            page.on("requestfailed", lambda request: loaded.errors.append(f"request failed: {request.url}"))
            page.goto(path.resolve().as_uri(), wait_until="load")
            loaded.ids = set(page.eval_on_selector_all("[id]", "nodes => nodes.map(n => n.id)"))
            loaded.text = page.inner_text("body") if page.query_selector("body") else page.content()
            # The viewport's worth: a full-page shot of a page holding an SVG never ends here.
            loaded.screenshot = page.screenshot()
        finally:
            browser.close()
    return loaded
