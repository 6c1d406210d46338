"""``stainless-train find-wbc IMAGE --pixel-size-um X|auto [--method cnn] [--json]``: white cells in any
stained RGB image. ``auto`` estimates the pixel size from the red cells and refuses when too few show."""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

import numpy as np

from core.images import read_rgb
from trainer.data.config import PHOTO_METHOD, PHOTO_STAGE2, WBC_METHODS, load_build_config, photo_finder
from trainer.errors import TrainerError
from trainer.wbc.finder import find_wbcs, srgb_to_linear
from trainer.wbc.rbcscale import estimate_pixel_size


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("find-wbc", help="locate white cells in a stained RGB image (PNG, JPEG, TIFF)")
    p.add_argument("image", type=Path)
    p.add_argument("--pixel-size-um", required=True,
                   help="sample-plane pixel size, µm, or auto (from the red cells, ~7.8 µm across)")
    p.add_argument("--method", choices=WBC_METHODS, default=None,
                   help=f"finder (default: {PHOTO_METHOD} with second stage {PHOTO_STAGE2}, or the --config's "
                        "[wbc] section when a config is given)")
    p.add_argument("--stage2", default=None,
                   help="second stage: off, shipped, or a file (net: .npz, cnn: .onnx verifier); default: off when "
                        f"--method is named, {PHOTO_STAGE2} when not, the config's with --config")
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
    if args.config is None:
        method, stage2 = photo_finder(args.method, args.stage2)
    else:
        method, stage2 = args.method or cfg.method, args.stage2 or cfg.stage2
    cfg = replace(cfg, method=method, stage2=stage2)
    black = 0.0 if encoding == "srgb" else args.black_level
    scale_note = "given"
    if args.pixel_size_um == "auto":
        est = estimate_pixel_size(np.asarray(rgb, np.float32) - np.float32(black))  # ScaleError is a TrainerError
        pixel_size, scale_note = est.pixel_size_um, f"auto: median red cell {est.rbc_diameter_px:.1f} px of {est.cells}"
    else:
        try:
            pixel_size = float(args.pixel_size_um)
        except ValueError as exc:
            raise TrainerError(f"--pixel-size-um: expected µm per pixel or 'auto', "
                               f"found {args.pixel_size_um!r}") from exc
    cells = find_wbcs(rgb, pixel_size, cfg, black_level=black)
    payload = {"image": str(args.image), "pixel_size_um": round(pixel_size, 4), "scale": scale_note,
               "method": cfg.method, "stage2": cfg.stage2,
               "cells": [{"x": round(c.x, 2), "y": round(c.y, 2), "bbox": list(c.bbox),
                          "area_um2": round(c.area_um2, 2), "cut": c.cut} for c in cells]}
    if args.json:
        print(json.dumps(payload, indent=2))
    else:
        print(f"pixel size {pixel_size:.4f} µm ({scale_note}); method {cfg.method}, second stage {cfg.stage2}")
        print(f"{len(cells)} white cells in {args.image}")
        for c in cells:
            print(f"  x {c.x:8.1f}  y {c.y:8.1f}  bbox {list(c.bbox)}  area {c.area_um2:6.1f} µm²"
                  + ("  cut by the edge" if c.cut else ""))
    return 0
