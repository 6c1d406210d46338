"""``stainless-train eval-style STYLE.pt --a DIR --b DIR [--paired] [--strip PNG] [--json]``."""

from __future__ import annotations

import argparse
from pathlib import Path

from trainer.commands.common import emit, set_threads
from trainer.style.evaluate import evaluate_style


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("eval-style", help="colour shift and nucleus IoU of a trained style on a folder of images")
    p.add_argument("checkpoint", type=Path, help="style.pt of fit-style")
    p.add_argument("--a", type=Path, required=True, help="images to style (domain A)")
    p.add_argument("--b", type=Path, required=True, help="images of the target style (domain B)")
    p.add_argument("--paired", action="store_true", help="B holds the same cells as A (style-cells --also)")
    p.add_argument("--strip", type=Path, help="write a before/after strip (PNG): A, output, B")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    set_threads(args.threads)
    r = evaluate_style(args.checkpoint, args.a, args.b, args.paired, args.strip)
    text = (f"style {r['style']} on {r['cells']} cells: hue {r['hue_a_deg']:.1f}° → {r['hue_out_deg']:.1f}° "
            f"(B {r['hue_b_deg']:.1f}°), colour shift {r['shift']:.2f}, nucleus IoU before/after "
            f"{r['nucleus_iou']:.3f} (min {r['nucleus_iou_min']:.3f}, flagged {r['flagged']:.2f})")
    if args.paired:
        text += (f"; vs true B: SSIM {r['ssim_in_truth']:.3f} → {r['ssim_out_truth']:.3f}, MAE "
                 f"{r['mae_in_truth']:.4f} → {r['mae_out_truth']:.4f}; true A vs true B nucleus IoU "
                 f"{r['nucleus_iou_truth_ab']:.3f}")
    emit(r, args.json, text)
    return 0
