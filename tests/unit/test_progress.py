"""Progress: a bar on a terminal (without colour under NO_COLOR), a line at most every
second elsewhere, and every plain message as a line either way."""

from __future__ import annotations

import io

from labctl.cli.context import Progress
from labctl.progress import Counted


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def steps(total: int) -> list[Counted]:
    return [Counted(f"ready: {done}/{total} hosts", "ready", done, total) for done in range(total + 1)]


def test_a_counted_step_is_a_bar_on_a_terminal_and_its_end_a_line(monkeypatch):
    monkeypatch.delenv("NO_COLOR", raising=False)
    screen = Terminal()
    progress = Progress(screen)
    for message in steps(4)[:3]:
        progress(message)
    progress("pulling image x")            # a plain line, written above the bar
    progress(steps(4)[-1])
    text = screen.getvalue()
    assert "labctl: ready:" in text and "2/4" in text and "\r" in text, text   # the bar, redrawn
    assert "labctl: pulling image x\n" in text
    assert text.rstrip().endswith("labctl: ready: 4/4 hosts") and progress.bars == {}
    assert "\x1b[" in text                   # coloured by default


def test_no_color_means_no_colour(monkeypatch):
    monkeypatch.setenv("NO_COLOR", "1")
    screen = Terminal()
    progress = Progress(screen)
    for message in steps(3):
        progress(message)
    assert "\x1b[3" not in screen.getvalue() and "\x1b[9" not in screen.getvalue()


def test_elsewhere_a_counted_step_prints_a_line_at_most_every_second_and_its_last():
    log = io.StringIO()
    progress = Progress(log)
    for message in steps(50):
        progress(message)
    lines = log.getvalue().splitlines()
    assert lines[-1] == "labctl: ready: 50/50 hosts" and len(lines) <= 3, lines
    assert "\r" not in log.getvalue()
