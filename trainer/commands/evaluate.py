"""``stainless-train evaluate CKPT DATASET [--split test] [--report DIR] [--json]``."""

from __future__ import annotations

import argparse
from pathlib import Path

from trainer.commands.common import emit, set_threads
from trainer.evaluate import evaluate
from trainer.report import write_report


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("evaluate", help="metrics + nucleus fidelity of a checkpoint on a dataset split")
    p.add_argument("checkpoint", type=Path)
    p.add_argument("dataset", type=Path)
    p.add_argument("--split", default="test", choices=("train", "val", "test"))
    p.add_argument("--report", type=Path, help="write metrics.json, samples.csv, galleries and index.html here")
    p.add_argument("--hr", action=argparse.BooleanOptionalAction, default=None,
                   help="compare with the 100x targets (default: what the checkpoint was trained on)")
    p.add_argument("--vgg-weights", type=Path, help="torchvision VGG19 state dict: adds the VGG feature distance")
    p.add_argument("--gallery", type=int, default=8, help="samples per gallery (random / best / worst)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    set_threads(args.threads)
    ev = evaluate(args.checkpoint, args.dataset, args.split, args.hr, args.batch_size, args.vgg_weights)
    if args.report:
        write_report(ev, args.report, args.gallery)
    s = ev.summary
    emit(s, args.json, f"{s['n']} {s['split']} cells: SSIM {s['ssim']:.4f}  PSNR {s['psnr']:.2f} dB  "
                       f"MAE {s['mae']:.4f}  nucleus IoU {s['nucleus_iou']:.3f}  flagged {s['flagged']} "
                       f"({100 * s['flagged_rate']:.1f} %)")
    return 0
