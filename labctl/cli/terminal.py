"""`labctl shell HOST`: this terminal joined to a shell on the host until it ends. Keys go
through raw (Ctrl-C reaches the host's program, not labctl), the host's terminal follows
this one's size, and labctl exits with the shell's exit code."""

from __future__ import annotations

import os
import select
import shutil
import signal
import sys
import termios
import tty

from ..engines.base import Terminal
from ..ops.shell import SHELL

__all__ = ["SHELL", "relay"]
END_OF_INPUT = b"\x04"


def relay(terminal: Terminal) -> int:
    connection = terminal.connection
    stdin, stdout = sys.stdin.fileno(), sys.stdout.fileno()
    interactive = os.isatty(stdin)

    def follow_size(*_ignored) -> None:
        # The terminal's own size: $COLUMNS and $LINES may be stale copies of it.
        size = os.get_terminal_size(stdin) if interactive else shutil.get_terminal_size()
        terminal.resize(size.lines, size.columns)

    follow_size()
    previous = signal.signal(signal.SIGWINCH, follow_size) if interactive else None
    saved = termios.tcgetattr(stdin) if interactive else None
    try:
        if interactive:
            tty.setraw(stdin)
        open_input = True
        while True:
            readable, _, _ = select.select([connection] + ([stdin] if open_input else []), [], [])
            if connection in readable:
                data = connection.recv(65536)
                if not data:
                    break
                os.write(stdout, data)
            if stdin in readable:
                data = os.read(stdin, 65536)
                # The input ended (a pipe, or none): say so as a terminal does, with Ctrl-D.
                # Closing our side instead would end the output with it.
                open_input = bool(data)
                try:
                    connection.sendall(data or END_OF_INPUT)
                except OSError:   # the program has ended, and its connection with it
                    open_input = False
    finally:
        if saved is not None:
            termios.tcsetattr(stdin, termios.TCSADRAIN, saved)
        if previous is not None:
            signal.signal(signal.SIGWINCH, previous)
        try:
            connection.close()
        except OSError:
            pass
    return terminal.exit_code()


