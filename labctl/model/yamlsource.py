"""YAML loading that remembers where each key stood, so errors can name the line.

The lab model is built from plain dicts and lists; `Source` keeps a side table from
key paths to line numbers and offers small typed readers that fail with one-line errors.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import yaml

from ..errors import LabFileError

KeyPath = tuple[str | int, ...]


def format_path(path: KeyPath) -> str:
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


def describe(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if isinstance(value, (int, float)):
        return f"a number ({value})"
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:37] + "..."
        return f"'{shown}'"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return type(value).__name__


@dataclass
class Source:
    """A parsed YAML file and the line of every key path in it."""

    file: str
    data: Any
    lines: dict[KeyPath, int] = field(default_factory=dict)

    def line_of(self, path: KeyPath) -> int | None:
        while True:
            if path in self.lines:
                return self.lines[path]
            if not path:
                return None
            path = path[:-1]

    def error(self, path: KeyPath, message: str) -> LabFileError:
        return LabFileError(self.file, self.line_of(path), format_path(path), message)

    # Typed readers. Each returns the value or raises a one-line error at `path`.

    def mapping(self, value: Any, path: KeyPath, allowed: Iterable[str],
                required: Iterable[str] = ()) -> dict[str, Any]:
        if value is None:
            value = {}
        if not isinstance(value, dict):
            raise self.error(path, f"expected a mapping, got {describe(value)}")
        allowed = list(allowed)
        for key in value:
            if not isinstance(key, str):
                raise self.error(path, f"keys must be text, got {describe(key)}")
            if key not in allowed:
                raise self.error(path + (key,), f"unknown key '{key}'; expected one of: "
                                 + ", ".join(allowed))
        for key in required:
            if key not in value:
                raise self.error(path, f"missing required key '{key}'")
        return value

    def named_mapping(self, value: Any, path: KeyPath, what: str,
                      pattern: str = r"^[a-z0-9][a-z0-9_-]*$") -> dict[str, Any]:
        """A mapping whose keys are user-chosen names (hosts, networks)."""
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise self.error(path, f"expected a mapping of {what} names, got {describe(value)}")
        for key in value:
            if not isinstance(key, str) or not re.match(pattern, key):
                raise self.error(path + (str(key),),
                                 f"bad {what} name {describe(key)}: use lowercase letters, digits and '-'")
        return value

    def sequence(self, value: Any, path: KeyPath) -> list[Any]:
        if value is None:
            return []
        if not isinstance(value, list):
            raise self.error(path, f"expected a list, got {describe(value)}")
        return value

    def text(self, value: Any, path: KeyPath, pattern: str | None = None,
             hint: str = "") -> str:
        if not isinstance(value, str) or value == "":
            raise self.error(path, f"expected text{hint and ' ' + hint}, got {describe(value)}")
        if pattern and not re.match(pattern, value):
            raise self.error(path, f"expected {hint or 'text matching ' + pattern}, got {describe(value)}")
        return value

    def integer(self, value: Any, path: KeyPath, low: int, high: int, what: str = "an integer") -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise self.error(path, f"expected {what} from {low} to {high}, got {describe(value)}")
        return value

    def boolean(self, value: Any, path: KeyPath) -> bool:
        if not isinstance(value, bool):
            raise self.error(path, f"expected true or false, got {describe(value)}")
        return value

    def duration(self, value: Any, path: KeyPath) -> float:
        """Seconds from `2s`, `500ms`, `1m` or a bare number of seconds."""
        seconds = parse_duration(value)
        if seconds is None:
            raise self.error(path, f"expected a duration such as 2s or 500ms, got {describe(value)}")
        return seconds

    def share(self, value: Any, path: KeyPath) -> float:
        """A fraction from `0.95` or `95%`."""
        fraction = parse_share(value)
        if fraction is None:
            raise self.error(path, f"expected a share such as 0.05 or 5%, got {describe(value)}")
        return fraction

    def rate(self, value: Any, path: KeyPath) -> float:
        bits = parse_rate(value)
        if bits is None:
            raise self.error(path, f"expected a rate such as 10mbit or 500kbit, got {describe(value)}")
        return bits


# Plain parsers, shared by the lab file's readers and the command line. Each returns None
# for input it cannot read, and leaves the wording of the error to the caller.

def parse_duration(value: Any) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0:
        return float(value)
    if isinstance(value, str):
        match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m)?\s*", value)
        if match:
            return float(match.group(1)) * {"ms": 0.001, "s": 1.0, "m": 60.0}[match.group(2) or "s"]
    return None


def parse_share(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        return None
    text = str(value).strip()
    try:
        fraction = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        return None
    return fraction if 0.0 <= fraction <= 1.0 else None


# tc's units: `bit` words count bits, `bps` words count bytes.
RATE_UNITS = {"bit": 1, "kbit": 1e3, "mbit": 1e6, "gbit": 1e9,
              "bps": 8, "kbps": 8e3, "mbps": 8e6, "gbps": 8e9}


def parse_rate(value: Any) -> float | None:
    """Bits per second from `10mbit`, `500kbit` or `2mbps` (bytes, as tc reads it)."""
    if not isinstance(value, str):
        return None
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]+)\s*", value)
    if not match or match.group(2).lower() not in RATE_UNITS:
        return None
    bits = float(match.group(1)) * RATE_UNITS[match.group(2).lower()]
    return bits if bits >= 8000 else None


def load_source(path: Path, display: str | None = None) -> Source:
    """Parse a YAML file into plain data plus a line table; one-line errors on bad YAML."""
    name = display or str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise LabFileError(name, None, "", "no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise LabFileError(name, None, "", f"cannot read: {exc}") from None
    return parse_source(text, name)


def parse_source(text: str, name: str) -> Source:
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        context, context_mark = getattr(exc, "context", None), getattr(exc, "context_mark", None)
        if context and context_mark is not None and context_mark is not mark:
            problem += f" ({context} that starts on line {context_mark.line + 1})"
        line = mark.line + 1 if mark else None
        raise LabFileError(name, line, "", f"malformed YAML: {problem}") from None
    source = Source(name, None)
    if root is None:
        raise LabFileError(name, None, "", "the file is empty; expected a lab mapping")
    constructor = yaml.SafeLoader("")
    source.data = _convert(root, (), source, constructor)
    return source


def _convert(node: yaml.Node, path: KeyPath, source: Source, constructor: yaml.SafeLoader) -> Any:
    source.lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        constructor.flatten_mapping(node)
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = _convert(key_node, path + ("<key>",), source, constructor)
            if isinstance(key, (dict, list)):
                raise source.error(path, "keys must be text, got a " + type(key).__name__)
            key_path = path + (str(key),)
            if key in result:
                raise LabFileError(source.file, key_node.start_mark.line + 1,
                                   format_path(key_path), f"duplicate key '{key}'")
            source.lines[key_path] = key_node.start_mark.line + 1
            result[key] = _convert(value_node, key_path, source, constructor)
        source.lines.pop(path + ("<key>",), None)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_convert(item, path + (index,), source, constructor)
                for index, item in enumerate(node.value)]
    try:
        return constructor.construct_object(node, deep=True)
    except yaml.YAMLError as exc:
        raise source.error(path, f"bad value: {getattr(exc, 'problem', exc)}") from None
