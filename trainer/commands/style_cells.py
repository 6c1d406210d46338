"""``stainless-train style-cells --style wright-giemsa --count 200 --seed 2 --out DIR``: synthetic stained cells."""

from __future__ import annotations

import argparse
from pathlib import Path

from trainer.commands.common import emit
from trainer.style.data import render_style_cells


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("style-cells", help="render white-cell crops of one stain style (a fit-style domain)")
    p.add_argument("--style", required=True, help="sim stain style: mgg | wright-giemsa")
    p.add_argument("--count", type=int, default=200, help="cells to write")
    p.add_argument("--seed", type=int, default=0, help="smear seed; other seeds give other cells (unpaired)")
    p.add_argument("--crop-px", type=int, default=64)
    p.add_argument("--lab-variation", type=float, default=0.15, help="log-normal σ of the lab's dye strength")
    p.add_argument("--also", action="append", default=[], metavar="STYLE",
                   help="also render the same cells in STYLE (paired truth for eval-style; OUT/<style>/ each)")
    p.add_argument("--out", type=Path, required=True, help="folder for the PNGs")
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    n = render_style_cells(args.out, args.style, args.count, args.seed, args.crop_px,
                           lab_variation=args.lab_variation, also=tuple(args.also))
    emit({"out": str(args.out), "style": args.style, "cells": n}, args.json, f"{n} {args.style} cells in {args.out}")
    return 0
