"""`labctl ui` and `labctl grade --ui`: the running lab, live in a browser.

Starlette and uvicorn come with the `ui` extra (pip install 'labctl-net[ui]'); without it
this package still imports, and `require` says in one line what to install. The modules:
`launch` is what the CLI calls, `app` puts the server together, `auth` guards every
request, `pages` serves the pages and their files (static/), `api` the JSON routes,
`snapshot` what the page draws, `stream` the events, `terminal` a shell per WebSocket,
`captures` the captures the page started, `grade` the class dashboard, `served` the lab
served, `replies` the one-line JSON errors, and `serve` runs it all under uvicorn."""

from __future__ import annotations

import importlib.util

from ..errors import UsageError

MISSING_EXTRA = "labctl ui needs starlette and uvicorn: pip install 'labctl-net[ui]'"


def require() -> None:
    """Refuse in one line, naming the extra, where the UI's libraries are not installed."""
    for name in ("starlette", "uvicorn"):
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):   # a module set to None (tests hide it so) or broken
            found = False
        if not found:
            raise UsageError(MISSING_EXTRA)
