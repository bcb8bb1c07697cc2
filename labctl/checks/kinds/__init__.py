"""The check kinds, one module each; `check_kinds` finds them by looking, so a new kind is
a new module here (and, if the probe must do something new, a handler in services/probe.py)."""

from __future__ import annotations

import importlib
import pkgutil
from functools import cache

from ..kind import CheckKind


@cache
def check_kinds() -> dict[str, CheckKind]:
    """Every kind, by the key a check names it with, in the order they declare."""
    found = []
    for module in pkgutil.iter_modules(__path__):
        declared = getattr(importlib.import_module(f"{__name__}.{module.name}"), "KIND", None)
        if isinstance(declared, CheckKind):
            found.append(declared)
    return {kind.name: kind for kind in sorted(found, key=lambda kind: (kind.order, kind.name))}
