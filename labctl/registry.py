"""Kinds are registered, not branched on: a check kind, an engine kind, an impairment
mechanism or an output format is one module of its package that declares itself under
an agreed name. `declared` finds them by looking, so adding one is adding its module."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterable
from typing import TypeVar

T = TypeVar("T")


def declared(package: str, path: Iterable[str], attribute: str, kind: type[T]) -> list[T]:
    """The `attribute` of every module in `package` (whose `__path__` is `path`) that holds
    a `kind`, in module-name order."""
    found = []
    for module in sorted(pkgutil.iter_modules(path), key=lambda info: info.name):
        value = getattr(importlib.import_module(f"{package}.{module.name}"), attribute, None)
        if isinstance(value, kind):
            found.append(value)
    return found
