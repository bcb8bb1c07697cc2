"""The `labctl` command: parse, run the verb, and turn every failure into one line."""

from __future__ import annotations

import os
import signal
import sys

from ..errors import LabError
from .failures import explain
from .parser import build_parser

DEBUG_VARIABLE = "LABCTL_DEBUG"


def _terminate(signum, frame):
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # A terminal closed under labctl, or a kill, cleans up as Ctrl-C does.
    for number in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(number, _terminate)
    try:
        code = args.handler(args)
        sys.stdout.flush()  # a reader that went away shows here, not at interpreter exit
        return code
    except LabError as exc:
        print(f"labctl: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("labctl: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`labctl logs HOST | head`): end quietly, and keep Python from
        # complaining again when it flushes stdout at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except Exception as exc:
        message = explain(exc)
        if message is None:
            if os.environ.get(DEBUG_VARIABLE):
                raise
            message = (f"internal error: {exc.__class__.__name__}: {exc} (a bug in labctl; "
                       f"{DEBUG_VARIABLE}=1 shows where)")
        print(f"labctl: error: {message}", file=sys.stderr)
        return 2
