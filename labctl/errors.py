"""Errors that reach the user as one line, never as a traceback."""

from __future__ import annotations

import re

# What would break a line or hide text on a terminal: C0 and C1 controls (newlines, NUL, ESC...),
# the Unicode line and paragraph separators, lone surrogates, and the bidirectional overrides.
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff"
                          "\u200e\u200f\u202a-\u202e\u2066-\u2069\ufeff]")
_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}

# Longest texts an error shows: a file name, a key path, the message itself.
MAX_FILE_TEXT = 300
MAX_PATH_TEXT = 200
MAX_MESSAGE_TEXT = 600


def _escape(match: re.Match) -> str:
    char = match.group()
    return _ESCAPES.get(char) or (f"\\x{ord(char):02x}" if ord(char) < 0x100 else f"\\u{ord(char):04x}")


def one_line(text: str, limit: int | None = None, middle: bool = False) -> str:
    """`text` with every control character escaped (a newline reads as \\n), so it prints
    as one line; longer than `limit`, it is cut at the end (or, with `middle`, in the middle)."""
    text = _UNPRINTABLE.sub(_escape, str(text))
    if limit is not None and len(text) > limit:
        if middle:
            half = (limit - 3) // 2
            text = text[:half] + "..." + text[len(text) - half:]
        else:
            text = text[:limit - 3] + "..."
    return text


class LabError(Exception):
    """A problem the user can fix; its text is printed as-is, on one line."""


class LabFileError(LabError):
    """Bad input in a lab file: names the file, the line and the key path. Each part is made
    one line here, whatever a value quoted into it held."""

    def __init__(self, file: str, line: int | None, path: str, message: str):
        self.file = one_line(file, MAX_FILE_TEXT, middle=True)
        self.line = line
        self.path = one_line(path, MAX_PATH_TEXT, middle=True)
        self.message = one_line(message, MAX_MESSAGE_TEXT)
        where = f"{self.file}:{line}" if line else self.file
        key = f" {self.path}:" if self.path else ""
        super().__init__(f"{where}:{key} {self.message}")


class EngineError(LabError):
    """The container engine refused or failed an operation."""
