"""``stainless-train build-synthetic --out D.zarr``: render training cells straight from the simulator."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from trainer.data.synthetic import SyntheticConfig, build_synthetic


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("build-synthetic", help="render a synthetic paired dataset from sim/ (fast path)")
    p.add_argument("--out", type=Path, required=True, help="dataset store to create or resume (.zarr)")
    p.add_argument("--windows", type=int, default=SyntheticConfig.windows, help="rendered windows (~2 cells each)")
    p.add_argument("--window-px", type=int, default=SyntheticConfig.window_px)
    p.add_argument("--crop-px", type=int, default=SyntheticConfig.crop_px)
    p.add_argument("--recipe", default=SyntheticConfig.recipe)
    p.add_argument("--profile", default=SyntheticConfig.profile)
    p.add_argument("--stain-style", default=SyntheticConfig.stain_style)
    p.add_argument("--lab-variation", type=float, default=SyntheticConfig.lab_variation)
    p.add_argument("--wbc-density", type=float, default=SyntheticConfig.wbc_per_mm2, help="white cells per mm²")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--hr", action="store_true",
                   help="also render the seed's 100x target of every cell (targets_hr; data.use_hr_target)")
    p.add_argument("--focus-sd-um", type=float, default=SyntheticConfig.focus_sd_um,
                   help="focus error of the unstained scan: σ (µm) of a per-window defocus; targets stay in focus")
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    cfg = SyntheticConfig(windows=args.windows, window_px=args.window_px, crop_px=args.crop_px, seed=args.seed,
                          profile=args.profile, recipe=args.recipe, stain_style=args.stain_style,
                          lab_variation=args.lab_variation, wbc_per_mm2=args.wbc_density, hr=args.hr,
                          focus_sd_um=args.focus_sd_um)
    start = time.perf_counter()
    interactive = sys.stderr.isatty() and not args.json

    def progress(done: int, total: int) -> None:
        if interactive or done == total or done % max(1, total // 10) == 0:
            end = "\n" if done == total or not interactive else "\r"
            print(f"window {done}/{total} ({time.perf_counter() - start:.0f} s)", end=end, file=sys.stderr)

    report = build_synthetic(cfg, args.out, progress)
    report["seconds"] = round(time.perf_counter() - start, 1)
    print(json.dumps(report) if args.json else
          f"{report['samples']} samples from {report['windows']} windows in {report['seconds']} s -> {args.out}")
    return 0
