"""``segment-nucleus`` on the white cells the finder found in real photographs: a contact sheet.

    python bench/wbc_nucleus_sheet.py --data ../shared/data/wbc-photos --out nuclei.png [--per-set 24] [--json]

For every set, the first ``--per-set`` cells found (the photo default finder, the set's red-cell scale) are cut
out 24 µm square, passed to :func:`trainer.nucleus.segment_nuclei` as the CLI would, and shown
as pairs: the crop, and the crop with the nucleus mask outlined in green. No nucleus labels exist
for these sets, so the sheet is for the eye; the JSON gives, per set, how many crops had no mask,
one component, or several (a lobed neutrophil is legitimately several), and the median mask
fraction of the crop.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.wbc_photos import set_scale
from trainer.commands.find_wbc import read_rgb
from trainer.data.config import PHOTO_METHOD, PHOTO_STAGE2, WbcConfig
from trainer.nucleus import components, segment_nuclei
from trainer.wbc.finder import find_wbcs, srgb_to_linear
from trainer.wbc.labelled import labelled_sets

CROP_UM = 24.0
TILE = 96


def cell_crops(images: list[Path], pixel_um: float, limit: int) -> list[np.ndarray]:
    """8-bit RGB crops ``(TILE, TILE, 3)`` around the first ``limit`` cells found (cut cells skipped)."""
    crops: list[np.ndarray] = []
    half = round(CROP_UM / 2 / pixel_um)
    for path in images:
        rgb8 = read_rgb(path)
        img = np.moveaxis(rgb8, 0, -1)
        pad = cv2.copyMakeBorder(np.ascontiguousarray(img), half, half, half, half, cv2.BORDER_REFLECT)
        for c in find_wbcs(srgb_to_linear(rgb8), pixel_um, WbcConfig(method=PHOTO_METHOD, stage2=PHOTO_STAGE2)):
            if c.cut:
                continue
            x, y = round(c.x), round(c.y)
            crop = pad[y:y + 2 * half, x:x + 2 * half]
            crops.append(cv2.resize(crop, (TILE, TILE), interpolation=cv2.INTER_AREA))
            if len(crops) >= limit:
                return crops
    return crops


def sheet_rows(crops: list[np.ndarray]) -> tuple[list[np.ndarray], dict[str, Any]]:
    tiles, counts, fracs = [], {"none": 0, "one": 0, "several": 0}, []
    for crop in crops:
        mask = segment_nuclei(crop)
        n = components(mask)[1]
        counts["none" if n == 0 else "one" if n == 1 else "several"] += 1
        fracs.append(float(mask.mean()))
        outlined = crop.copy()
        contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        cv2.drawContours(outlined, contours, -1, (0, 255, 0), 1)
        tiles += [crop, outlined]
    return tiles, {**counts, "median_mask_fraction": round(float(np.median(fracs)), 3) if fracs else None}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, default=Path("../shared/data/wbc-photos"))
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--per-set", type=int, default=24)
    p.add_argument("--cols", type=int, default=12, help="tiles per row (crop + outlined pairs)")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    report, all_tiles = {}, []
    for name, images in labelled_sets(args.data).items():
        crops = cell_crops(images, set_scale(images), args.per_set)
        tiles, stats = sheet_rows(crops)
        report[name] = {"cells": len(crops), **stats}
        all_tiles += tiles + [np.zeros((TILE, TILE, 3), np.uint8)] * ((-len(tiles)) % args.cols)  # a set per row block
    if all_tiles:
        rows = len(all_tiles) // args.cols
        sheet = np.zeros((rows * TILE, args.cols * TILE, 3), np.uint8)
        for k, t in enumerate(all_tiles):
            r, c = divmod(k, args.cols)
            sheet[r * TILE:(r + 1) * TILE, c * TILE:(c + 1) * TILE] = t
        cv2.imwrite(str(args.out), sheet[..., ::-1])
    if args.json:
        print(json.dumps({"sheet": str(args.out), "crop_um": CROP_UM, "sets": report}, indent=1))
    else:
        for name, r in report.items():
            print(f"{name:<14} {r}")
        print(f"contact sheet {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
