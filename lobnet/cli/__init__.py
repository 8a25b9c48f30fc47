"""Shared plumbing for the Hydra entry points: where the configs live, and turning bad input into one
``error:`` line on stderr and a non-zero exit instead of a traceback."""

from __future__ import annotations

import functools
import os
import sys
from pathlib import Path

from lobnet.data.errors import LobDataError

CONF_DIR = str(Path(__file__).resolve().parents[2] / "conf")
EXIT_BAD_INPUT = 2
LOG_WIDTH = 160  # columns of the tables printed when output goes to a file or a pipe


def console():
    """The console the entry points print their tables on. On a terminal, Rich's own (the terminal's width).
    Written to a file or a pipe (``make demo > log``, CI), Rich would assume 80 columns and wrap every cell of a
    wide table over several lines; there the width is ``LOG_WIDTH`` unless ``COLUMNS`` says otherwise."""
    from rich.console import Console

    if sys.stdout.isatty() or os.environ.get("COLUMNS"):
        return Console()
    return Console(width=LOG_WIDTH)


def reports_errors(fn):
    """Run ``fn``; a LobDataError (bad input) or a config ValueError prints ``error: ...`` and exits 2."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except LobDataError as e:
            print(f"error: {e.message}", file=sys.stderr)
            sys.exit(EXIT_BAD_INPUT)
        except (ValueError, KeyError, FileNotFoundError) as e:
            print(f"error: {e}", file=sys.stderr)
            sys.exit(EXIT_BAD_INPUT)
        except RuntimeError as e:  # e.g. an ONNX export whose parity check failed
            print(f"error: {e}", file=sys.stderr)
            sys.exit(1)

    return wrapper
