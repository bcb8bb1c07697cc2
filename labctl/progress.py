"""A progress message that also says how far its step has come, so a terminal can draw a
bar while a log keeps the line. It is a str: whatever only prints progress prints it."""

from __future__ import annotations


class Counted(str):
    """`text`, and `done` of `total` for the step it belongs to (ready, down, grade...)."""
    step: str
    done: int
    total: int

    def __new__(cls, text: str, step: str, done: int, total: int) -> "Counted":
        message = super().__new__(cls, text)
        message.step, message.done, message.total = step, done, total
        return message
