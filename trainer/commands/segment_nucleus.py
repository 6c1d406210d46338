"""``stainless-train segment-nucleus IMAGE --out MASK.png [--json]``."""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from trainer.commands.common import emit
from trainer.nucleus import components, segment_nuclei


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("segment-nucleus", help="nucleus mask of a Romanowsky-stained RGB image")
    p.add_argument("image", type=Path, help="PNG / JPEG / TIFF, 8 or 16 bit RGB")
    p.add_argument("--out", type=Path, required=True, help="mask PNG of the image's size (nucleus = 255)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=run)


def read_rgb(path: Path) -> np.ndarray:
    """An image file as float RGB ``(H, W, 3)`` in [0, 1]."""
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED | cv2.IMREAD_ANYDEPTH)
    if img is None or img.ndim != 3 or img.shape[2] < 3:
        raise ValueError(f"{path}: expected a readable RGB image file, found "
                         f"{'nothing readable' if img is None else f'shape {img.shape}'}")
    scale = 65535.0 if img.dtype == np.uint16 else 255.0
    return cv2.cvtColor(img[..., :3], cv2.COLOR_BGR2RGB).astype(np.float64) / scale


def run(args: argparse.Namespace) -> int:
    mask = segment_nuclei(read_rgb(args.image))
    if not cv2.imwrite(str(args.out), mask.astype(np.uint8) * 255):
        raise OSError(f"could not write {args.out}")
    n = components(mask)[1]
    emit({"image": str(args.image), "mask": str(args.out), "components": n, "area_px": int(mask.sum()),
          "area_fraction": float(mask.mean())}, args.json,
         f"{args.out}: {n} nuclear component(s), {int(mask.sum())} px")
    return 0
