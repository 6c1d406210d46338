"""``stainless-train find-wbc IMAGE --pixel-size-um X [--json]``: white cells in any stained RGB image."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from core.images import read_rgb
from trainer.data.config import load_build_config
from trainer.data.wbc import find_wbcs, srgb_to_linear
from trainer.errors import TrainerError


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("find-wbc", help="locate white cells in a stained RGB image (PNG, JPEG, TIFF)")
    p.add_argument("image", type=Path)
    p.add_argument("--pixel-size-um", type=float, required=True, help="sample-plane pixel size, µm")
    p.add_argument("--encoding", choices=("auto", "srgb", "linear"), default="auto",
                   help="auto: 8-bit images are sRGB photographs, 16-bit are linear raw frames")
    p.add_argument("--black-level", type=float, default=0.0, help="ADU to subtract from linear images")
    p.add_argument("--config", type=Path, default=None, help="build config TOML; its [wbc] section is used")
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    rgb = read_rgb(args.image)
    encoding = args.encoding
    if encoding == "auto":
        encoding = "srgb" if rgb.dtype == np.uint8 else "linear"
    if encoding == "srgb":
        if rgb.dtype != np.uint8:
            raise TrainerError(f"--encoding srgb needs an 8-bit image; {args.image} is {rgb.dtype}")
        rgb = srgb_to_linear(rgb)
    cfg = load_build_config(args.config).wbc
    cells = find_wbcs(rgb, args.pixel_size_um, cfg, black_level=0.0 if encoding == "srgb" else args.black_level)
    payload = {"image": str(args.image), "pixel_size_um": args.pixel_size_um,
               "cells": [{"x": round(c.x, 2), "y": round(c.y, 2), "bbox": list(c.bbox),
                          "area_um2": round(c.area_um2, 2)} for c in cells]}
    if args.json:
        print(json.dumps(payload, indent=2))
    else:
        print(f"{len(cells)} white cells in {args.image}")
        for c in cells:
            print(f"  x {c.x:8.1f}  y {c.y:8.1f}  bbox {list(c.bbox)}  area {c.area_um2:6.1f} µm²")
    return 0
