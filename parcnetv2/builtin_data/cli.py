"""``python -m parcnetv2.builtin_data {cls,coco,ade} [--out DIR] [--seed N] ...``: write one built-in set.

Every field of the set's spec is an option (``--num-train``, ``--min-size H W`` ...), with the spec's
default.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Sequence
from pathlib import Path

from .specs import SPECS, _Spec
from .writing import DEFAULT_DIRS, ensure

__all__ = ["build_parser", "main"]


def _add_spec_options(parser: argparse.ArgumentParser, spec_type: type[_Spec]) -> None:
    for f in dataclasses.fields(spec_type):
        if f.name == "version":
            continue
        flag = "--" + f.name.replace("_", "-")
        default = f.default
        if isinstance(default, tuple):
            kind = str if default and isinstance(default[0], str) else int
            parser.add_argument(flag, type=kind, nargs="+", default=list(default), help=f"default: {default}")
        else:
            parser.add_argument(flag, type=type(default), default=default, help=f"default: {default}")


def build_parser(tasks: Sequence[str] = tuple(SPECS)) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m parcnetv2.builtin_data",
        description="Write (or reuse) one built-in data set: classification, COCO or ADE20K layout.",
    )
    sub = parser.add_subparsers(dest="task", required=True)
    for task in tasks:
        p = sub.add_parser(task, help=SPECS[task].title)
        p.add_argument(
            "--out", default=str(DEFAULT_DIRS[task]), help="folder to create (default: %(default)s)"
        )
        _add_spec_options(p, SPECS[task])
    return parser


def main(argv: Sequence[str] | None = None) -> Path:
    """Command line: write (or reuse) one built-in set and print what it holds."""
    args = vars(build_parser().parse_args(argv))
    task, out = args.pop("task"), args.pop("out")
    try:
        root = ensure(out, SPECS[task](**args))
    except (ValueError, FileExistsError) as err:
        raise SystemExit(f"error: {err}") from None
    print(f"{SPECS[task].title} ready: {root}")
    return root
