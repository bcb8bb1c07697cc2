"""YAML loading that remembers where each key stood, so errors can name the line.

The lab model is built from plain dicts and lists; `Source` keeps a side table from
key paths to line numbers and offers small typed readers that fail with one-line errors.

Any file may be handed to it, so reading is bounded: the file's size, how deep it nests,
how many values it holds once its aliases are expanded, how many aliases it uses, and how
long a number may be. Only plain YAML is read: text, numbers, booleans, null, mappings,
lists and the merge key `<<`; any other tag is refused by name, and a date is text.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import yaml
from yaml.constructor import SafeConstructor
from yaml.events import (AliasEvent, MappingStartEvent, ScalarEvent, SequenceStartEvent,
                         StreamEndEvent)
from yaml.nodes import ScalarNode
from yaml.parser import Parser
from yaml.reader import Reader
from yaml.resolver import Resolver
from yaml.scanner import Scanner

try:
    from yaml._yaml import CParser
except ImportError:   # PyYAML built without libyaml
    CParser = None  # type: ignore[misc,assignment]

from ..errors import LabFileError, one_line

KeyPath = tuple[str | int, ...]

# -- limits: what any file is held to ---------------------------------------------------------

MAX_FILE_BYTES = 256 * 1024     # a lab file; the default lab is about 4 KiB
MAX_DEPTH = 64                  # mappings and lists inside each other, aliases included
MAX_NODES = 50_000              # values (keys too) once aliases and merges are expanded; a
                                # 300-host lab with 1,500 checks holds about 21,000
MAX_ALIASES = 1_000             # uses of *name in one file
MAX_NUMBER_TEXT = 100           # characters of one number
MAX_DURATION = 86_400.0         # seconds: one day
MAX_RATE = 1e13                 # bits per second: 10 tbit
SHOWN_TEXT = 40                 # characters of a value an error quotes

YAML_TAG = "tag:yaml.org,2002:"
STR, INT, FLOAT, BOOL, NULL = (YAML_TAG + name for name in ("str", "int", "float", "bool", "null"))
MAP, SEQ, MERGE = YAML_TAG + "map", YAML_TAG + "seq", YAML_TAG + "merge"
SCALAR_TAGS = {STR, INT, FLOAT, BOOL, NULL}

# Control characters a name or a one-line value may not hold.
CONTROL = re.compile("[\x00-\x1f\x7f\x85\u2028\u2029]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def format_path(path: KeyPath) -> str:
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            part = _short(str(part))
            text += f".{part}" if text else part
    return text


def _short(text: str, limit: int = SHOWN_TEXT) -> str:
    text = one_line(text)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def quote(value: Any) -> str:
    """A value as an error quotes it: 'like this', one line, at most 40 characters."""
    return f"'{_short(str(value) if not isinstance(value, int) else _number(value))}'"


def _number(value: int) -> str:
    if value.bit_length() > 128:
        return f"{'-' if value < 0 else ''}<about {int(value.bit_length() * 0.30103) + 1} digits>"
    return str(value)


def describe(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if isinstance(value, int):
        return f"a number ({_number(value)})"
    if isinstance(value, float):
        return f"a number ({value})"
    if isinstance(value, str):
        return quote(value)
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
    payload_bytes: int = 0      # what the lab's checks send, counted against its limit

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
                raise self.error(path + (key,), f"unknown key {quote(key)}; expected one of: "
                                 + ", ".join(allowed))
        for key in required:
            if key not in value:
                raise self.error(path, f"missing required key '{key}'")
        return value

    def named_mapping(self, value: Any, path: KeyPath, what: str,
                      pattern: str = r"^[a-z0-9][a-z0-9_-]*$") -> dict[str, Any]:
        """A mapping whose keys are user-chosen names (hosts, networks); a name matches
        `pattern` whole (a trailing newline too is refused)."""
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise self.error(path, f"expected a mapping of {what} names, got {describe(value)}")
        for key in value:
            if not isinstance(key, str) or not re.fullmatch(pattern, key):
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
             hint: str = "", *, single_line: bool = False, allow_nul: bool = False) -> str:
        """Non-empty text, matching `pattern` whole if given. NUL is refused unless
        `allow_nul` (no file name, command or argument can hold one); with `single_line`,
        so is every control character, newlines included (names, paths, images)."""
        if not isinstance(value, str) or value == "":
            raise self.error(path, f"expected text{hint and ' ' + hint}, got {describe(value)}")
        if "\x00" in value and not allow_nul:
            raise self.error(path, f"expected text{hint and ' ' + hint} without NUL characters, "
                             f"got {describe(value)}")
        if single_line and CONTROL.search(value):
            raise self.error(path, f"expected text{hint and ' ' + hint} on one line, without newlines "
                             f"or other control characters, got {describe(value)}")
        if pattern and not re.fullmatch(pattern, value):
            raise self.error(path, f"expected {hint or 'text matching ' + pattern}, got {describe(value)}")
        return value

    def name(self, value: Any, path: KeyPath, hint: str = "") -> str:
        """A name people choose freely (a check's): any text on one line."""
        return self.text(value, path, hint=hint, single_line=True)

    def integer(self, value: Any, path: KeyPath, low: int, high: int, what: str = "an integer") -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise self.error(path, f"expected {what} from {low} to {high}, got {describe(value)}")
        return value

    def boolean(self, value: Any, path: KeyPath) -> bool:
        if not isinstance(value, bool):
            raise self.error(path, f"expected true or false, got {describe(value)}")
        return value

    def duration(self, value: Any, path: KeyPath) -> float:
        """Seconds from `2s`, `500ms`, `1m` or a bare number of seconds, up to a day."""
        seconds = parse_duration(value)
        if seconds is None:
            raise self.error(path, f"expected a duration such as 2s or 500ms (at most "
                             f"{MAX_DURATION:g}s), got {describe(value)}")
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
    """Seconds, finite and at most MAX_DURATION; None for anything else."""
    seconds: float | None = None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            seconds = float(value)
        except OverflowError:
            return None
    elif isinstance(value, str) and len(value) <= MAX_NUMBER_TEXT:
        match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m)?\s*", value)
        if match:
            seconds = float(match.group(1)) * {"ms": 0.001, "s": 1.0, "m": 60.0}[match.group(2) or "s"]
    if seconds is None or not math.isfinite(seconds) or not 0 <= seconds <= MAX_DURATION:
        return None
    return seconds


def parse_share(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        return None
    try:
        text = str(value).strip()
        fraction = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except (ValueError, OverflowError):
        return None
    return fraction if 0.0 <= fraction <= 1.0 else None


# tc's units: `bit` words count bits, `bps` words count bytes.
RATE_UNITS = {"bit": 1, "kbit": 1e3, "mbit": 1e6, "gbit": 1e9,
              "bps": 8, "kbps": 8e3, "mbps": 8e6, "gbps": 8e9}


def parse_rate(value: Any) -> float | None:
    """Bits per second from `10mbit`, `500kbit` or `2mbps` (bytes, as tc reads it)."""
    if not isinstance(value, str) or len(value) > MAX_NUMBER_TEXT:
        return None
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]+)\s*", value)
    if not match or match.group(2).lower() not in RATE_UNITS:
        return None
    bits = float(match.group(1)) * RATE_UNITS[match.group(2).lower()]
    return bits if 8000 <= bits <= MAX_RATE else None


# -- reading a file ---------------------------------------------------------------------------

def load_source(path: Path, display: str | None = None) -> Source:
    """Parse a YAML file into plain data plus a line table; one-line errors on bad YAML."""
    name = display or str(path)
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise LabFileError(name, None, "", "no such file") from None
    except (OSError, ValueError) as exc:
        raise LabFileError(name, None, "", f"cannot read: {exc}") from None
    if len(data) > MAX_FILE_BYTES:
        raise LabFileError(name, None, "", f"the file is larger than {MAX_FILE_BYTES // 1024} KiB, "
                           "the most a lab file may hold")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise LabFileError(name, line, "", f"not UTF-8 text (byte 0x{data[exc.start]:02x}); "
                           "save the file as UTF-8") from None
    # As text mode reads it: \r\n and \r end lines as \n does.
    return parse_source(text.replace("\r\n", "\n").replace("\r", "\n"), name)


def parse_source(text: str, name: str) -> Source:
    source = Source(name, None)
    if len(text) > MAX_FILE_BYTES:
        raise LabFileError(name, None, "", f"the file is larger than {MAX_FILE_BYTES // 1024} KiB, "
                           "the most a lab file may hold")
    try:
        try:
            root = _Composer(source, text, _fast_events).compose()
        except yaml.YAMLError:
            # libyaml words a malformed file otherwise than PyYAML: the slow reading says it.
            root = _Composer(source, text, _Events).compose()
    except LabFileError:
        raise
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or str(exc).splitlines()[0]
        context, context_mark = exc.context, exc.context_mark
        if context and context_mark is not None and context_mark is not mark:
            problem += f" ({context} that starts on line {context_mark.line + 1})"
        line = mark.line + 1 if mark else None
        raise LabFileError(name, line, "", f"malformed YAML: {problem}") from None
    except yaml.YAMLError as exc:
        position = getattr(exc, "position", None)
        line = text.count("\n", 0, position) + 1 if isinstance(position, int) else None
        lines = str(exc).splitlines()
        raise LabFileError(name, line, "", f"malformed YAML: {lines[0] if lines else exc}") from None
    except (RecursionError, ValueError, TypeError, IndexError, KeyError, AttributeError) as exc:
        # The parser's own slip on strange input: still one line, never a traceback.
        raise LabFileError(name, None, "", f"malformed YAML ({type(exc).__name__})") from None
    if root is None:
        raise LabFileError(name, None, "", "the file is empty; expected a lab mapping")
    source.data = _Converter(source).convert(root, ())
    return source


class _Events(Reader, Scanner, Parser):
    """PyYAML's reader, scanner and parser: the event stream, nothing built from it."""

    def __init__(self, text: str):
        Reader.__init__(self, text)
        Scanner.__init__(self)
        Parser.__init__(self)


def _fast_events(text: str) -> Any:
    """libyaml's parser where PyYAML was built with it: the same events, several times
    faster than the pure Python one (a few hundred hosts' file in a few milliseconds).
    Not for a text with a tab, which libyaml takes as space where PyYAML refuses it: a
    lab file reads the same wherever it is read (tests/unit/test_fuzz.py holds them equal)."""
    return CParser(text) if CParser is not None and "\t" not in text else _Events(text)


_NOT_PLAIN = {YAML_TAG + "timestamp", YAML_TAG + "value", YAML_TAG + "yaml"}


class _PlainResolver(Resolver):
    """SafeLoader's implicit types without timestamps (and the `=` and `!` oddities): an
    unquoted 2020-02-30 is text, as a lab means it."""
    yaml_implicit_resolvers = {first: [(tag, regexp) for tag, regexp in entries if tag not in _NOT_PLAIN]
                               for first, entries in Resolver.yaml_implicit_resolvers.items()}


class _Node:
    """What the composer keeps of a YAML node: its kind, tag (resolved, and whether the
    file gave it), value (text, a list of nodes, or a list of key and value nodes) and line."""
    __slots__ = ("kind", "tag", "explicit", "value", "line", "style")

    def __init__(self, kind: str, tag: str, explicit: bool, value: Any, line: int, style: str | None = None):
        self.kind, self.tag, self.explicit, self.value, self.line, self.style = \
            kind, tag, explicit, value, line, style


_NO_KEY = object()


class _Composer:
    """Builds the node tree from the event stream without recursion, refusing what no lab
    needs before it costs anything: nesting deeper than MAX_DEPTH, more than MAX_NODES
    values, more than MAX_ALIASES aliases, an alias inside the node it names, a second
    document. Aliases share the node they name, so nothing is expanded here."""

    def __init__(self, source: Source, text: str, events: Callable[[str], Any]):
        self.source = source
        self.text = text
        self.events = events
        self.anchors: dict[str, _Node] = {}
        self.open_anchors: set[str] = set()
        self.nodes = 0
        self.aliases = 0
        self.resolver = _PlainResolver()
        # Open collections: [node, the key node waiting for its value, anchor]
        self.stack: list[list[Any]] = []

    def compose(self) -> _Node | None:
        events = self.events(self.text)
        events.get_event()                          # stream start
        if events.check_event(StreamEndEvent):
            return None
        events.get_event()                          # document start
        root = self.node(events)
        events.get_event()                          # document end
        if not events.check_event(StreamEndEvent):
            second = events.get_event()
            raise LabFileError(self.source.file, second.start_mark.line + 1, "",
                               "malformed YAML: found a second document; a lab file holds one")
        return root

    def node(self, events: Any) -> _Node:
        while True:
            event = events.get_event()
            if isinstance(event, AliasEvent):
                node = self.alias(event)
            elif isinstance(event, ScalarEvent):
                node = self.scalar(event)
            elif isinstance(event, (SequenceStartEvent, MappingStartEvent)):
                self.open(event)
                continue
            else:                                   # the end of a sequence or mapping
                node, _key, anchor = self.stack.pop()
                self.open_anchors.discard(anchor)
            if not self.stack:
                return node
            frame = self.stack[-1]
            if frame[0].kind == "sequence":
                frame[0].value.append(node)
            elif frame[1] is _NO_KEY:
                frame[1] = node
            else:
                frame[0].value.append((frame[1], node))
                frame[1] = _NO_KEY

    def path(self) -> KeyPath:
        """Where the parser stands, for an error."""
        path: list[str | int] = []
        for node, key, _anchor in self.stack:
            if node.kind == "sequence":
                path.append(len(node.value))
            elif key is _NO_KEY:
                break
            else:
                path.append(key.value if key.kind == "scalar" else "<key>")
        return tuple(path)

    def fail(self, event: Any, message: str) -> LabFileError:
        return LabFileError(self.source.file, event.start_mark.line + 1, format_path(self.path()), message)

    def count(self, event: Any) -> None:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise self.fail(event, f"the file holds more than {MAX_NODES} values; a lab file needs far fewer")

    def remember(self, event: Any, node: _Node) -> None:
        anchor = event.anchor
        if anchor is None:
            return
        if anchor in self.anchors:
            raise self.fail(event, f"anchor &{anchor} is defined twice (first on line "
                            f"{self.anchors[anchor].line})")
        self.anchors[anchor] = node

    def alias(self, event: AliasEvent) -> _Node:
        self.aliases += 1
        if self.aliases > MAX_ALIASES:
            raise self.fail(event, f"the file uses more than {MAX_ALIASES} aliases (*name)")
        name = event.anchor or ""                   # the parser gives every alias its name
        if name in self.open_anchors:
            raise self.fail(event, f"alias *{_short(name)} is used inside the node it names; "
                            "a lab file cannot contain itself")
        if name not in self.anchors:
            raise self.fail(event, f"alias *{_short(name)} names no anchor (&{_short(name)}) before it")
        return self.anchors[name]

    def scalar(self, event: ScalarEvent) -> _Node:
        self.count(event)
        explicit = event.tag not in (None, "!")
        tag = event.tag if explicit and event.tag is not None else \
            self.resolver.resolve(ScalarNode, event.value, event.implicit)
        line = event.start_mark.line + 1 if event.start_mark is not None else 0   # the parser marks all
        node = _Node("scalar", tag, explicit, event.value, line, event.style)
        self.remember(event, node)
        return node

    def open(self, event: Any) -> None:
        self.count(event)
        if len(self.stack) >= MAX_DEPTH:
            raise self.fail(event, f"nested deeper than {MAX_DEPTH} levels")
        kind = "sequence" if isinstance(event, SequenceStartEvent) else "mapping"
        explicit = event.tag not in (None, "!")
        tag = event.tag if explicit else (SEQ if kind == "sequence" else MAP)
        node = _Node(kind, tag, explicit, [], event.start_mark.line + 1)
        self.remember(event, node)
        if event.anchor is not None:
            self.open_anchors.add(event.anchor)
        self.stack.append([node, _NO_KEY, event.anchor])


def show_tag(tag: str) -> str:
    return _short("!!" + tag[len(YAML_TAG):] if tag.startswith(YAML_TAG) else tag)


class _Converter:
    """Plain data from the node tree: aliases expanded (and counted against MAX_NODES and
    MAX_DEPTH), merges applied, tags checked, numbers read within bounds, and the line of
    every key path written to the source's table."""

    CONSTRUCT = {INT: SafeConstructor.construct_yaml_int, FLOAT: SafeConstructor.construct_yaml_float,
                 BOOL: SafeConstructor.construct_yaml_bool, NULL: SafeConstructor.construct_yaml_null}
    WHAT = {"mapping": "a mapping", "sequence": "a list", "scalar": "a single value"}

    def __init__(self, source: Source):
        self.source = source
        self.nodes = 0
        self.constructor = SafeConstructor()

    def fail(self, path: KeyPath, line: int | None, message: str) -> LabFileError:
        return LabFileError(self.source.file, line, format_path(path), message)

    def count(self, path: KeyPath, line: int, how_many: int = 1) -> None:
        self.nodes += how_many
        if self.nodes > MAX_NODES:
            raise self.fail(path, line, f"the file expands to more than {MAX_NODES} values "
                            "(each alias repeats what it names)")

    def convert(self, node: _Node, path: KeyPath) -> Any:
        self.count(path, node.line)
        if len(path) > MAX_DEPTH:
            raise self.fail(path, node.line, f"nested deeper than {MAX_DEPTH} levels (aliases included)")
        self.source.lines.setdefault(path, node.line)
        if node.kind == "scalar":
            return self.scalar(node, path)
        self.check_tag(node, path)
        if node.kind == "sequence":
            return [self.convert(item, path + (index,)) for index, item in enumerate(node.value)]
        return self.mapping(node, path)

    def check_tag(self, node: _Node, path: KeyPath) -> None:
        if not node.explicit:
            return
        tag = node.tag
        fits = {"mapping": {MAP}, "sequence": {SEQ}, "scalar": SCALAR_TAGS}[node.kind]
        if tag in fits:
            return
        if tag in SCALAR_TAGS or tag in (MAP, SEQ):
            kind = "mapping" if tag == MAP else "sequence" if tag == SEQ else "scalar"
            raise self.fail(path, node.line, f"tag {show_tag(tag)} marks {self.WHAT[kind]}, "
                            f"but it is on {self.WHAT[node.kind]}")
        raise self.fail(path, node.line, f"tag {show_tag(tag)} is not allowed; write the value "
                        "plainly (quote it for text)")

    def scalar(self, node: _Node, path: KeyPath) -> Any:
        self.check_tag(node, path)
        tag, value = node.tag, node.value
        if tag not in self.CONSTRUCT:           # text (and `<<` where no merge can be)
            if node.style == '"' and _SURROGATE.search(value):
                raise self.fail(path, node.line, "the text holds an escaped surrogate (\\ud800 to "
                                "\\udfff), which is no character")
            return value
        if tag in (INT, FLOAT) and len(value) > MAX_NUMBER_TEXT:
            raise self.fail(path, node.line, f"a number of {len(value)} characters; at most "
                            f"{MAX_NUMBER_TEXT} (quote it for text)")
        try:
            return self.CONSTRUCT[tag](self.constructor, ScalarNode(tag, value))
        except Exception:
            raise self.fail(path, node.line, f"cannot read {quote(value)} as {show_tag(tag)}"
                            + ("" if node.explicit else "; quote it for text")) from None

    def mapping(self, node: _Node, path: KeyPath) -> dict[Any, Any]:
        chosen: dict[Any, tuple[_Node, _Node]] = {}
        own: set[Any] = set()
        for key_node, value_node, is_own in self.entries(node, path, 0):
            if key_node.kind != "scalar":
                raise self.fail(path, key_node.line, f"keys must be text, got {self.WHAT[key_node.kind]}")
            self.count(path, key_node.line)
            key = self.scalar(key_node, path)
            if is_own:
                if key in own:
                    raise self.fail(path + (str(key),), key_node.line, f"duplicate key {quote(key)}")
                own.add(key)
            elif key in chosen:
                continue
            # As PyYAML merges: a key keeps its first place; the mapping's own value wins,
            # else that of the first merged mapping that holds the key.
            chosen[key] = (key_node, value_node)
        result: dict[Any, Any] = {}
        for key, (key_node, value_node) in chosen.items():
            key_path = path + (str(key),)
            self.source.lines[key_path] = key_node.line
            result[key] = self.convert(value_node, key_path)
        return result

    def entries(self, node: _Node, path: KeyPath, depth: int) -> list[tuple[_Node, _Node, bool]]:
        """The mapping's key and value nodes with its merges (`<<: *base`) laid in first,
        as PyYAML lays them; True marks the mapping's own."""
        merged: list[tuple[_Node, _Node, bool]] = []
        own: list[tuple[_Node, _Node, bool]] = []
        for key_node, value_node in node.value:
            if key_node.kind == "scalar" and key_node.tag == MERGE and not key_node.explicit:
                merged.extend(self.merge(value_node, path, depth, key_node.line))
            else:
                own.append((key_node, value_node, True))
        return merged + own

    def merge(self, value: _Node, path: KeyPath, depth: int, line: int) -> list[tuple[_Node, _Node, bool]]:
        if depth >= MAX_DEPTH:
            raise self.fail(path, line, f"merges (<<) nest deeper than {MAX_DEPTH} levels")
        mappings = value.value if value.kind == "sequence" else [value]
        for item in mappings:
            if item.kind != "mapping":
                got = describe(self.scalar(item, path)) if item.kind == "scalar" else "a list"
                raise self.fail(path, item.line, f"'<<' merges a mapping or a list of mappings, got {got}")
        pairs: list[tuple[_Node, _Node, bool]] = []
        for mapping in mappings:
            self.check_tag(mapping, path)
            flat = self.entries(mapping, path, depth + 1)
            self.count(path, line, len(flat))
            pairs.extend((key_node, value_node, False) for key_node, value_node, _own in flat)
        return pairs
