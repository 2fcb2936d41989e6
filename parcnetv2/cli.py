"""One-line errors for the command-line tools, with the traceback behind ``--debug``.

Every CLI's ``if __name__ == "__main__":`` runs its ``main`` through :func:`run_cli`: an exception ends
the process with one line on stderr (``PROG: error: MESSAGE``) and exit status 1 (130 on Ctrl-C);
``--debug`` on the command line or ``PARCNETV2_DEBUG=1`` in the environment shows the full traceback
instead. ``main`` itself still raises, so Python callers and tests see the real exception.

Importing this module also hides setuptools' "pkg_resources is deprecated" warning, which mmengine 0.10.7
triggers on import (setuptools < 81 is pinned for it; nothing a user can act on), so the tools' stderr
holds what matters.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

__all__ = ["DEBUG_ENV", "add_debug_argument", "debug_requested", "one_line", "run_cli"]

DEBUG_ENV = "PARCNETV2_DEBUG"
_MAX_CHARS = 2000

warnings.filterwarnings("ignore", message="pkg_resources is deprecated as an API", category=UserWarning)


def add_debug_argument(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add ``--debug`` (read by :func:`run_cli`) so it shows in ``--help`` and parses everywhere."""
    parser.add_argument(
        "--debug",
        action="store_true",
        help=f"show the full traceback on errors (also: {DEBUG_ENV}=1)",
    )
    return parser


def debug_requested(argv: Sequence[str]) -> bool:
    """``--debug`` among the options (before any ``--``) or ``PARCNETV2_DEBUG`` set to a true value."""
    options = list(argv)
    if "--" in options:
        options = options[: options.index("--")]
    env = os.environ.get(DEBUG_ENV, "").strip().lower()
    return "--debug" in options or env not in ("", "0", "false", "no", "off")


def one_line(err: BaseException) -> str:
    """The exception as one line: its message with line breaks folded (type name for non-user errors)."""
    text = " ".join(part.strip() for part in str(err).splitlines() if part.strip())
    if isinstance(err, KeyError) and len(err.args) == 1:
        text = str(err.args[0])
    if len(text) > _MAX_CHARS:
        text = text[: _MAX_CHARS - 3] + "..."
    if not text:
        return type(err).__name__
    return text if isinstance(err, (ValueError, OSError)) else f"{type(err).__name__}: {text}"


def run_cli(
    main: Callable[[list[str]], Any], argv: Sequence[str] | None = None, prog: str | None = None
) -> Any:
    """Call ``main(argv)``; on an exception print one line to stderr and exit 1 (the traceback with --debug).

    Args:
        main: the tool's entry point, taking ``sys.argv[1:]``-style arguments.
        argv: default ``sys.argv[1:]``.
        prog: the name in the message (default: the script's file name).
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    prog = prog or Path(sys.argv[0]).name or "parcnetv2"
    try:
        return main(argv)
    except KeyboardInterrupt:
        if debug_requested(argv):
            raise
        print(f"{prog}: interrupted", file=sys.stderr, flush=True)
        raise SystemExit(130) from None
    except Exception as err:
        if debug_requested(argv):
            raise
        print(
            f"{prog}: error: {one_line(err)} (--debug or {DEBUG_ENV}=1 for the traceback)",
            file=sys.stderr,
            flush=True,
        )
        raise SystemExit(1) from None
