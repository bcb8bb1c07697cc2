"""The check kinds, one module each; `check_kinds` finds them by looking, so a new kind is
a new module here (and, if the probe must do something new, a handler in services/probe.py)."""

from __future__ import annotations

from functools import cache

from ...registry import declared
from ..kind import CheckKind


@cache
def check_kinds() -> dict[str, CheckKind]:
    """Every kind, by the key a check names it with, in the order they declare."""
    found = declared(__name__, __path__, "KIND", CheckKind)
    return {kind.name: kind for kind in sorted(found, key=lambda kind: (kind.order, kind.name))}
