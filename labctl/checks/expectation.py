"""How received data must look: exactly, containing, matching a regex, holding a JSON
subset, or being N bytes long. Every check kind expects through these."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from ..model.yamlsource import KeyPath, Source, describe

MATCH_KINDS = ("exact", "contains", "regex", "json", "length")

# A regular expression in a lab file is compiled at validation, so it is held to a size and
# a nesting that Python's compiler takes in its stride (1000 nested groups exhaust its
# recursion; a{4294967296} overflows it).
MAX_REGEX = 1000                # characters
MAX_REGEX_NESTING = 32          # groups inside groups


def regex_problem(pattern: str, binary: bool = False) -> str | None:
    """None when `pattern` compiles (as bytes, with `binary`), else why not, in one line."""
    if len(pattern) > MAX_REGEX:
        return f"a regular expression of {len(pattern)} characters; at most {MAX_REGEX}"
    if group_nesting(pattern) > MAX_REGEX_NESTING:
        return f"a regular expression nesting groups more than {MAX_REGEX_NESTING} deep"
    try:
        re.compile(pattern.encode() if binary else pattern)
    except re.error as exc:
        return f"bad regular expression: {exc}"
    except (OverflowError, RecursionError, ValueError, TypeError) as exc:
        # OverflowError: a repeat count beyond what re counts; ValueError: text that is not UTF-8
        return f"bad regular expression: {type(exc).__name__}: {exc}"
    return None


def group_nesting(pattern: str) -> int:
    """How deep the pattern's groups nest: escapes and character classes skipped."""
    depth = deepest = 0
    index, in_class = 0, False
    while index < len(pattern):
        char = pattern[index]
        if char == "\\":
            index += 2
            continue
        if in_class:
            in_class = char != "]"
        elif char == "[":
            in_class = True
            if pattern[index + 1:index + 2] == "^":
                index += 1
            if pattern[index + 1:index + 2] == "]":     # []...] and [^]...] hold a ]
                index += 1
        elif char == "(":
            depth += 1
            deepest = max(deepest, depth)
        elif char == ")":
            depth = max(0, depth - 1)
        index += 1
    return deepest


@dataclass(frozen=True)
class Expectation:
    """How received data must look: exactly, containing, matching a regex, holding a JSON
    subset, or being N bytes long."""
    kind: str
    value: Any

    def mismatch(self, received: bytes | str) -> str | None:
        """None when `received` satisfies this expectation, else why not."""
        data = received.encode() if isinstance(received, str) else received
        text = data.decode("utf-8", "replace")
        if self.kind == "length":
            return None if len(data) == self.value else f"expected {self.value} bytes, got {len(data)}"
        if self.kind == "json":
            try:
                actual = json.loads(text)
            except ValueError:
                return f"expected JSON containing {json.dumps(self.value)}, got {_preview(text)!r}"
            problem = json_subset_mismatch(self.value, actual, "$")
            return None if problem is None else f"JSON {problem}"
        if self.kind == "exact" and text == self.value:
            return None
        if self.kind == "contains" and self.value in text:
            return None
        if self.kind == "regex" and re.search(self.value, text, re.DOTALL):
            return None
        wanted = {"exact": "exactly", "contains": "containing", "regex": "matching"}[self.kind]
        return f"expected {wanted} {self.value!r}, got {_preview(text)!r}"

    def read_rule(self) -> dict[str, Any]:
        """When the probe may stop reading: the reply can be judged from then on."""
        if self.kind == "exact":
            return {"mode": "bytes", "n": len(self.value.encode())}
        if self.kind == "length":
            return {"mode": "bytes", "n": self.value}
        if self.kind == "contains":
            return {"mode": "regex", "pattern": re.escape(self.value)}
        if self.kind == "regex":
            return {"mode": "regex", "pattern": self.value}
        return {"mode": "json"}

    def describe(self) -> str:
        if self.kind in ("json", "length"):
            return f"{self.kind} {json.dumps(self.value)}"
        return f"{self.kind} {self.value!r}"


def json_subset_mismatch(expected: Any, actual: Any, where: str) -> str | None:
    """None when every key and value in `expected` is also in `actual`."""
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return f"at {where}: expected an object, got {json.dumps(actual)[:40]}"
        for key, value in expected.items():
            if key not in actual:
                return f"at {where}: no key {key!r}"
            problem = json_subset_mismatch(value, actual[key], f"{where}.{key}")
            if problem:
                return problem
        return None
    if isinstance(expected, list):
        if not isinstance(actual, list):
            return f"at {where}: expected a list, got {json.dumps(actual)[:40]}"
        for index, item in enumerate(expected):
            if not any(json_subset_mismatch(item, candidate, where) is None for candidate in actual):
                return f"at {where}[{index}]: no element matches {json.dumps(item)[:40]}"
        return None
    if expected != actual:
        return f"at {where}: expected {json.dumps(expected)}, got {json.dumps(actual)[:40]}"
    return None


def _preview(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


def with_client(expectation: Expectation, address: Any) -> Expectation:
    """`{client}` in an expectation is the address the client really used."""
    if not isinstance(expectation.value, str):
        return expectation
    text = re.escape(str(address)) if expectation.kind == "regex" else str(address)
    return Expectation(expectation.kind, expectation.value.replace("{client}", text))


def parse_expectation(source: Source, raw: Any, path: KeyPath) -> Expectation:
    if isinstance(raw, (str, int, float)) and not isinstance(raw, bool):
        return Expectation("exact", str(raw))
    spec = source.mapping(raw, path, MATCH_KINDS)
    if len(spec) != 1:
        raise source.error(path, "expected text, or exactly one of: " + ", ".join(MATCH_KINDS))
    kind, value = next(iter(spec.items()))
    if kind == "json":
        return Expectation("json", value)
    if kind == "length":
        return Expectation("length", source.integer(value, path + (kind,), 0, 1 << 30, "a byte count"))
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise source.error(path + (kind,), f"expected text, got {describe(value)}")
    text = str(value)
    if kind == "regex" and (problem := regex_problem(text)):
        raise source.error(path + (kind,), problem)
    return Expectation(kind, text)
