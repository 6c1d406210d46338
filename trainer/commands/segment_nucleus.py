"""``stainless-train segment-nucleus IMAGE --out MASK.png [--json]``."""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from core.images import read_rgb_unit
from trainer.commands.common import emit
from trainer.nucleus import components, segment_nuclei


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("segment-nucleus", help="nucleus mask of a Romanowsky-stained RGB image")
    p.add_argument("image", type=Path, help="PNG / JPEG / TIFF, 8 or 16 bit RGB")
    p.add_argument("--out", type=Path, required=True, help="mask PNG of the image's size (nucleus = 255)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    mask = segment_nuclei(read_rgb_unit(args.image))
    if not cv2.imwrite(str(args.out), mask.astype(np.uint8) * 255):
        raise OSError(f"could not write {args.out}")
    n = components(mask)[1]
    emit({"image": str(args.image), "mask": str(args.out), "components": n, "area_px": int(mask.sum()),
          "area_fraction": float(mask.mean())}, args.json,
         f"{args.out}: {n} nuclear component(s), {int(mask.sum())} px")
    return 0
