"""The command line: a parser, one thin function per verb, and the views they print with."""

from .main import main

__all__ = ["main"]
