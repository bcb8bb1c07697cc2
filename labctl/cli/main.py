"""The `labctl` command: parse, run the verb, and turn every failure into one line and its
exit code (labctl.errors.EXIT_CODES)."""

from __future__ import annotations

import os
import signal
import sys

from ..errors import INTERNAL, INTERRUPTED, OUTPUT_CLOSED, USAGE
from .completion import answer
from .failures import failure
from .parser import build_parser

DEBUG_VARIABLE = "LABCTL_DEBUG"


def _terminate(signum, frame):
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    answer(parser)   # a shell asking for completions is answered, and labctl exits
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:   # argparse has said why (or printed --help, --version)
        return exc.code if isinstance(exc.code, int) else (USAGE if exc.code else 0)
    # A terminal closed under labctl, or a kill, cleans up as Ctrl-C does.
    for number in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(number, _terminate)
    try:
        code = args.handler(args)
        sys.stdout.flush()  # a reader that went away shows here, not at interpreter exit
        return code
    except KeyboardInterrupt:
        print("labctl: interrupted", file=sys.stderr)
        return INTERRUPTED
    except BrokenPipeError:
        # The reader went away (`labctl logs HOST | head`): end quietly, and keep Python from
        # complaining again when it flushes stdout at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return OUTPUT_CLOSED
    except Exception as exc:
        known = failure(exc)
        if known is None:
            if os.environ.get(DEBUG_VARIABLE):
                raise
            known = INTERNAL, (f"internal error: {exc.__class__.__name__}: {exc} (a bug in labctl; "
                               f"{DEBUG_VARIABLE}=1 shows where)")
        code, message = known
        print(f"labctl: error: {message}", file=sys.stderr)
        return code
