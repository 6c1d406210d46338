"""``stainless-train``: thin command line over the trainer library.

Each subcommand lives in ``trainer/commands/<topic>.py`` and exposes ``add_parser(sub)`` and
``run(args) -> int``; adding one is one line in :data:`COMMANDS`.
"""

from __future__ import annotations

import argparse
import logging
import sys
from types import ModuleType

from trainer.commands import (
    ablation,
    audit,
    build_dataset,
    build_synthetic,
    denoise,
    distill,
    eval_style,
    evaluate,
    find_wbc,
    fit,
    fit_style,
    inspect,
    segment_nucleus,
    style_cells,
)
from trainer.data.store import DatasetError
from trainer.errors import TrainerError

#: The subcommands, in help order.
COMMANDS: list[ModuleType] = [fit, evaluate, segment_nucleus, ablation, audit, distill, fit_style, eval_style,
                              build_dataset, build_synthetic, style_cells, find_wbc, inspect, denoise]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="stainless-train", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return int(args.run(args))
    except (TrainerError, DatasetError, ValueError, OSError) as exc:
        print(f"stainless-train {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
