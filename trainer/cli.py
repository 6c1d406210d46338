"""``stainless-train``: thin command line over the trainer library.

Each subcommand lives in ``trainer/commands/<topic>.py`` and exposes ``add_parser(sub)`` and
``run(args) -> int``; adding one is one line in :data:`COMMANDS`. A command's module is imported only
when it runs (or for the full help), so ``find-wbc`` and the dataset commands start without torch.
"""

from __future__ import annotations

import argparse
import logging
import sys
from importlib import import_module

from trainer.data.store import DatasetError
from trainer.errors import TrainerError

#: The subcommands and their modules under ``trainer.commands``, in help order.
COMMANDS: dict[str, str] = {
    "fit": "fit", "evaluate": "evaluate", "segment-nucleus": "segment_nucleus", "ablation": "ablation",
    "audit": "audit", "distill": "distill", "fit-style": "fit_style", "eval-style": "eval_style",
    "build-dataset": "build_dataset", "build-synthetic": "build_synthetic", "style-cells": "style_cells",
    "find-wbc": "find_wbc", "inspect": "inspect", "denoise": "denoise",
}


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The parser of every subcommand, or of ``only`` (a name in :data:`COMMANDS`) alone."""
    parser = argparse.ArgumentParser(prog="stainless-train", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, module in COMMANDS.items():
        if only in (None, name):
            import_module(f"trainer.commands.{module}").add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    command = next((a for a in argv if not a.startswith("-")), None)
    args = build_parser(command if command in COMMANDS else None).parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return int(args.run(args))
    except (TrainerError, DatasetError, ValueError, OSError) as exc:
        print(f"stainless-train {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
