"""An impairment's values: what `delay: 50ms, loss: 1%` means, read from the lab file or
the command line alike, and the interfaces they apply to."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any, Callable

from .yamlsource import describe, parse_duration, parse_rate, parse_share

KINDS = {"delay": "duration", "jitter": "duration", "loss": "share", "rate": "rate",
         "duplicate": "share", "corrupt": "share", "reorder": "share",
         # Stream faults, on TCP: pieces of at most `slice` bytes, `slice_delay` apart; a
         # connection reset once `limit` bytes have gone out, or `reset` after it began.
         "slice": "size", "slice_delay": "duration", "limit": "size", "reset": "duration"}
# What each field does, as `labctl schema` tells an editor.
TEXTS = {"delay": "added to every packet leaving the interface, such as 40ms",
         "jitter": "how much the delay varies, such as 5ms",
         "loss": "the share of packets dropped, such as 5% or 0.05",
         "rate": "the most the interface sends, such as 10mbit or 500kbit",
         "duplicate": "the share of packets sent twice, such as 1%",
         "corrupt": "the share of packets corrupted, such as 0.1%",
         "reorder": "the share of packets that skip the delay, and so arrive out of order, such as 25%; "
                    "needs a delay",
         "slice": "TCP segments cut into pieces of at most this many payload bytes, or {bytes: 1, delay: 10ms}",
         "slice_delay": "the time between the pieces of a sliced payload, such as 20ms",
         "limit": "reset each TCP connection once this many bytes went out, or {bytes: 1000}",
         "reset": "reset each TCP connection this long after it began, such as 2s, or {after: 2s}"}
# The lab file's nested forms of the stream faults: slice: {bytes: 4, delay: 20ms}, ...
NESTED = {"slice": {"bytes": "slice", "delay": "slice_delay"}, "limit": {"bytes": "limit"},
          "reset": {"after": "reset"}}
STREAM_FIELDS = ("slice", "limit", "reset")
MAX_SIZE = 1 << 30


@dataclass(frozen=True, order=True)
class Interface:
    host: str
    network: str

    def __str__(self) -> str:
        return f"{self.host}:{self.network}"


@dataclass(frozen=True)
class Impairment:
    """Seconds, fractions and bits per second; None where nothing is asked."""
    delay: float | None = None
    jitter: float | None = None
    loss: float | None = None
    rate: float | None = None
    duplicate: float | None = None
    corrupt: float | None = None
    reorder: float | None = None
    slice: float | None = None        # bytes
    slice_delay: float | None = None
    limit: float | None = None        # bytes
    reset: float | None = None

    def over(self, base: Impairment) -> Impairment:
        """This impairment's fields laid over `base`'s."""
        return replace(base, **{name: value for name, value in self.values().items()})

    def values(self) -> dict[str, float]:
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}

    @property
    def empty(self) -> bool:
        return not any(self.values().values())

    def describe(self) -> str:
        return " ".join(f"{name} {format_value(name, value)}" for name, value in self.values().items()
                        if value) or "none"


def format_value(name: str, value: float) -> str:
    kind = KINDS[name]
    if kind == "size":
        return f"{value:g}B"
    if kind == "duration":
        return f"{value * 1000:g}ms"
    if kind == "share":
        return f"{value * 100:g}%"
    for unit, size in (("gbit", 1e9), ("mbit", 1e6), ("kbit", 1e3)):
        if value >= size:
            return f"{value / size:g}{unit}"
    return f"{value:g}bit"


def read_impairment(raw: dict[str, Any], fail: Callable[[str, str], Exception]) -> Impairment:
    """Build an Impairment from text values (lab file or command line); `fail(key, message)`
    makes the error that names where the value came from."""
    values: dict[str, float] = {}
    for key, value in _flattened(raw, fail).items():
        kind = KINDS.get(key)
        if kind is None:
            raise fail(key, f"unknown impairment '{key}'; expected one of: " + ", ".join(KINDS))
        parsed = {"duration": parse_duration, "share": parse_share, "rate": parse_rate, "size": _size}[kind](value)
        if parsed is None:
            example = {"duration": "80ms", "share": "5%", "rate": "10mbit", "size": "4 (bytes)"}[kind]
            raise fail(key, f"expected a {kind} such as {example}, got {describe(value)}")
        values[key] = parsed
    return Impairment(**values)


def _flattened(raw: dict[str, Any], fail: Callable[[str, str], Exception]) -> dict[str, Any]:
    """`slice: {bytes: 4, delay: 20ms}` as `slice: 4, slice_delay: 20ms`; the rest as given."""
    flat: dict[str, Any] = {}
    for key, value in raw.items():
        if key in NESTED and isinstance(value, dict):
            for inner, inner_value in value.items():
                if inner not in NESTED[key]:
                    raise fail(key, f"{key} takes " + " and ".join(NESTED[key]) + f", not {describe(inner)}")
                flat[NESTED[key][inner]] = inner_value
        else:
            flat[key] = value
    return flat


def _size(value: Any) -> float | None:
    """A byte count from 1 to 1 GiB."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        return None
    try:
        size = int(str(value).strip().removesuffix("B").removesuffix("b"))
    except ValueError:
        return None
    return float(size) if 1 <= size <= MAX_SIZE else None


def check_consistent(impairment: Impairment, fail: Callable[[str, str], Exception]) -> None:
    if impairment.reorder and not impairment.delay:
        raise fail("reorder", "reorder needs a delay: reordered packets are the ones that skip it")
    if impairment.jitter and impairment.jitter > (impairment.delay or 0):
        raise fail("jitter", "jitter larger than the delay would need negative delays")
    if impairment.slice_delay and not impairment.slice:
        raise fail("slice_delay", "a delay between slices needs slice: {bytes: N}")


@dataclass(frozen=True)
class Declared:
    target: str
    interfaces: list[Interface]
    impairment: Impairment
