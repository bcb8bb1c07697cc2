"""Impairment mechanisms: how a host's network sidecar (services/shaper.py) bends its
interfaces. Each is one module here that declares a `MECHANISM`, found by looking, so
adding one touches that module and the shaper's own code for it. `doctor` reads what each
needs from these declarations.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cache

from ...errors import LabError
from ...registry import declared

VARIABLE = "LABCTL_SHAPER"   # auto (the default), or a mechanism's name to force it
AUTO = "auto"


@dataclass(frozen=True)
class Mechanism:
    name: str
    needs: tuple[str, ...]   # kernel features, as `netadmin.py features` names them
    summary: str             # what hosts' impairments use with it
    preference: int          # auto takes the lowest whose needs the kernel has

    def missing(self, found: dict[str, bool]) -> list[str]:
        return [need for need in self.needs if not found.get(need)]


@cache
def mechanisms() -> dict[str, Mechanism]:
    found = declared(__name__, __path__, "MECHANISM", Mechanism)
    return {mechanism.name: mechanism for mechanism in sorted(found, key=lambda m: m.preference)}


def chosen_mechanism() -> str:
    """`auto` or the name $LABCTL_SHAPER forces; the sidecar decides `auto` on its kernel."""
    chosen = os.environ.get(VARIABLE, AUTO)
    if chosen != AUTO and chosen not in mechanisms():
        raise LabError(f"{VARIABLE}={chosen}: expected one of " + ", ".join([AUTO, *mechanisms()]))
    return chosen


def mechanism_for(found: dict[str, bool]) -> Mechanism:
    """What hosts get on a kernel with these features: the forced one, else the first
    whose needs it has, else the last resort (whose lacks `doctor` then names)."""
    chosen = chosen_mechanism()
    if chosen != AUTO:
        return mechanisms()[chosen]
    ordered = list(mechanisms().values())
    return next((m for m in ordered if not m.missing(found)), ordered[-1])
