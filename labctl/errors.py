"""Errors that reach the user as one line, never as a traceback."""

from __future__ import annotations


class LabError(Exception):
    """A problem the user can fix; its text is printed as-is, on one line."""


class LabFileError(LabError):
    """Bad input in a lab file: names the file, the line and the key path."""

    def __init__(self, file: str, line: int | None, path: str, message: str):
        self.file = file
        self.line = line
        self.path = path
        self.message = message
        where = f"{file}:{line}" if line else file
        key = f" {path}:" if path else ""
        super().__init__(f"{where}:{key} {message}")


class EngineError(LabError):
    """The container engine refused or failed an operation."""
