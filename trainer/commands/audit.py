"""``stainless-train audit CKPT DATASET --out DIR [--split all] [--top 100] [--json]``."""

from __future__ import annotations

import argparse
from pathlib import Path

from trainer.audit import audit
from trainer.commands.common import emit, set_threads


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("audit", help="rank samples by loss, label likely causes, list ids a rebuild can exclude")
    p.add_argument("checkpoint", type=Path)
    p.add_argument("dataset", type=Path)
    p.add_argument("--out", type=Path, required=True, help="audit.csv, exclude.txt and gallery_worst.png go here")
    p.add_argument("--split", default="all", choices=("all", "train", "val", "test"))
    p.add_argument("--top", type=int, default=100, help="how many of the worst samples to label")
    p.add_argument("--max-pls-px", type=float, default=1.0, help="PLS misalignment above this is a cause (px)")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    set_threads(args.threads)
    result = audit(args.checkpoint, args.dataset, args.out, args.split, args.top, args.max_pls_px)
    emit(result, args.json, f"{result['worst']} worst of {result['samples']} samples: {result['labels_in_worst']}; "
                            f"{result['excluded']} ids in {args.out / 'exclude.txt'}")
    return 0
