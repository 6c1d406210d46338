"""Benchmark of the virtual microscope: ms per simulated image and per stack, and peak memory.

For each field size it times, in one process: rasterising the sample, preparing the object spectra,
and rendering a whole recipe stack (optics + camera noise). The baseline is one complex64 FFT of
the camera-grid size, measured in the same run: ``ratio`` = stack time / baseline, which says how
many FFT-equivalents one stack costs and is comparable across machines. Peak memory is the
tracemalloc peak (numpy registers its buffers) during the stack render.

    python bench/sim_stack.py [--recipe full-nohe] [--sizes 64,256,1024] [--repeats 3] [--json]
"""

from __future__ import annotations

import argparse
import json
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

import numpy as np
import scipy.fft as sfft

from firmware_bridge.recipes import resolve_recipe
from firmware_bridge.rigs import get_profile
from sim.microscope import Microscope
from sim.rasterize import rasterize
from sim.sample import SmearConfig, make_smear
from sim.scan import calibrated_exposures


def _best_ms(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1e3 * min(times)


def measure(size: int, recipe_id: str, repeats: int) -> dict[str, Any]:
    geometry = get_profile("thesis-43")
    recipe = resolve_recipe(recipe_id, geometry)
    m = Microscope(geometry)
    exposures = calibrated_exposures("thesis-43", recipe_id)
    smear = make_smear((size * m.pixel_um,) * 2, 7, SmearConfig.from_dict({"wbc_per_mm2": 300.0}))
    fine = m.fine_shape((size, size))
    rng = np.random.default_rng(0)
    baseline_arr = np.ones((size, size), np.complex64)
    baseline = _best_ms(lambda: sfft.fft2(baseline_arr, workers=-1), max(repeats, 5))
    raster = _best_ms(lambda: rasterize(smear, m.fine_pixel_um, fine), repeats)
    maps = rasterize(smear, m.fine_pixel_um, fine)
    prepare = _best_ms(lambda: m.prepare(maps), repeats)
    field = m.prepare(maps)
    stack = _best_ms(lambda: field.render_stack(recipe, exposures, rng), repeats)
    tracemalloc.start()
    field.render_stack(recipe, exposures, rng)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    total = raster + prepare + stack
    return {
        "size_px": size, "recipe": recipe_id, "images": len(recipe),
        "rasterize_ms": round(raster, 2), "prepare_ms": round(prepare, 2), "stack_ms": round(stack, 2),
        "ms_per_image": round(stack / len(recipe), 3), "total_ms": round(total, 1),
        "baseline_fft_ms": round(baseline, 3), "ratio_stack_to_fft": round(stack / baseline, 1),
        "peak_mb": round(peak / 2**20, 1),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--recipe", default="full-nohe")
    p.add_argument("--sizes", default="64,128,256,512,1024")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    rows = [measure(int(s), args.recipe, args.repeats) for s in args.sizes.split(",")]
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    cols = ["size_px", "images", "rasterize_ms", "prepare_ms", "stack_ms", "ms_per_image", "total_ms",
            "baseline_fft_ms", "ratio_stack_to_fft", "peak_mb"]
    print(" ".join(f"{c:>18}" for c in cols))
    for r in rows:
        print(" ".join(f"{r[c]:>18}" for c in cols))
    base = rows[0]
    for r in rows[1:]:
        growth = r["stack_ms"] / base["stack_ms"]
        pixels = (r["size_px"] / base["size_px"]) ** 2
        print(f"{base['size_px']}→{r['size_px']} px: stack time x{growth:.1f} for x{pixels:.0f} pixels")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
