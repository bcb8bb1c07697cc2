"""Errors that reach the user as one line, never as a traceback, and the exit code each
kind of outcome gives: one table (EXIT_CODES) that the CLI, its help and the docs read."""

from __future__ import annotations

import re
from dataclasses import dataclass

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


class UsageError(LabError):
    """The command line asks for what cannot be: an option's value, or a host, check,
    scenario or lab that is not there."""


@dataclass(frozen=True)
class ExitCode:
    code: int
    name: str
    meaning: str


# labctl's exit codes. `exec` and `shell` are the exception: they exit with the code of the
# command they ran on the host (PASSED_THROUGH), which may be any of these numbers.
OK = 0
FAILED = 1
USAGE = 2
LAB_FILE = 3
ENGINE = 4
INTERNAL = 5
INTERRUPTED = 130
OUTPUT_CLOSED = 141

EXIT_CODES: tuple[ExitCode, ...] = (
    ExitCode(OK, "ok", "done; every check or step passed"),
    ExitCode(FAILED, "failed", "a check or a scenario step did not pass, the lab or a machine is not ready "
             "(status, cluster status), doctor found what is missing, or grade has rows the run "
             "itself failed"),
    ExitCode(USAGE, "usage", "the command line is wrong or names what is not there: an unknown verb or "
             "option; a host, check or scenario the lab does not have; a lab that is not running, or "
             "not on the engine; a file that cannot be read or written"),
    ExitCode(LAB_FILE, "lab file", "the lab file, the cluster file or a grade roster is wrong (it says where: "
             "file, line, key)"),
    ExitCode(ENGINE, "engine", "the container engine refused, failed, or does not answer; a connection "
             "to it was lost"),
    ExitCode(INTERNAL, "internal", "a bug in labctl (LABCTL_DEBUG=1 shows where)"),
    ExitCode(INTERRUPTED, "interrupted", "Ctrl-C, SIGTERM or SIGHUP; what was under way was cleaned up"),
    ExitCode(OUTPUT_CLOSED, "output closed", "the reader of labctl's output went away (a broken pipe, "
             "as with | head)"),
)
PASSED_THROUGH = "exec and shell exit with the exit code of the command they ran on the host"


def exit_code_of(error: LabError) -> int:
    """The exit code a LabError ends labctl with."""
    if isinstance(error, LabFileError):
        return LAB_FILE
    if isinstance(error, EngineError):
        return ENGINE
    return USAGE
