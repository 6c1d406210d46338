"""Whole-field staining: seams and compute of each tiling method against one untiled pass.

The shipped default model (its ONNX with the spatial axes freed, ``edge.device.onnxshape``) stains a
simulated ``full-nohe`` field (default 1024x1024) once untiled — the reference and the compute
baseline — and once per tiling method (``edge.device.tiling``). Per method: ``seam_mae`` (mean absolute
difference to the reference, in [0, 1], over pixels within 2 px of a tile boundary), ``mae`` and
``max_abs`` over the whole field, ``border_mae`` (pixels within 8 px of the field's edge),
``compute_ratio`` (model input pixels / field pixels) and ``time_ratio`` (wall time / untiled
wall time, same run). The halo is measured with the backend (``edge.device.tiling.measure_halo``).
Target: ``halo`` at seam_mae <= 1/255 and compute_ratio <= 1.3.

``field_stain``: the daemon's cost of ``[field_stain] enabled`` (``edge.device.fieldstain.FieldStainer``,
halo method, normalisation and uint8 conversion included) per field of ``--field-stain`` sizes,
against the same model staining one 64 px cell (batch 8) — the field's cost in cells — and the
bytes the ``stained`` payload adds to the ``field`` message.

    python bench/tiling.py [--size 1024] [--tile 256] [--max-tile 512] [--field-stain 256x256,1920x1200]
                           [--threads 1] [--json]
"""

from __future__ import annotations

import argparse
import json
import tarfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from edge.device.backends.onnxruntime import OnnxRuntimeBackend
from edge.device.config import FieldStainConfig
from edge.device.crops import Normalisation, normalise
from edge.device.fieldstain import FieldStainer
from edge.device.onnxshape import free_spatial_dims
from edge.device.tiling import METHODS, halo_tile, measure_halo, plan_tiles, stain_field

ROOT = Path(__file__).resolve().parents[1]
SEAM_TARGET = 1 / 255
COMPUTE_TARGET = 1.3


def sim_field(size: int, seed: int) -> tuple[NDArray[np.uint16], Normalisation]:
    """A simulated ``full-nohe`` stack ``(N, C, size, size)`` (raw ADU) and its normalisation."""
    from firmware_bridge.recipes import resolve_recipe
    from firmware_bridge.rigs import get_profile
    from sim.microscope import Microscope
    from sim.rasterize import rasterize
    from sim.sample import SmearConfig, make_smear
    from sim.scan import calibrated_exposures

    geometry = get_profile("thesis-43")
    recipe = resolve_recipe("full-nohe", geometry)
    m = Microscope(geometry)
    smear = make_smear((size * m.pixel_um,) * 2, seed, SmearConfig.from_dict({"wbc_per_mm2": 400.0}))
    field = m.prepare(rasterize(smear, m.fine_pixel_um, m.fine_shape((size, size))))
    raw = field.render_stack(recipe, calibrated_exposures("thesis-43", "full-nohe"), np.random.default_rng(seed))
    cam = m.config.camera
    return raw, Normalisation.uniform(len(recipe), cam.black_level_adu, cam.max_adu - cam.black_level_adu)


def _timed(fn: Any) -> tuple[Any, float]:
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def run(size: int, tile: int, max_tile: int, threads: int, seed: int,
        field_sizes: list[tuple[int, int]]) -> dict[str, Any]:
    with tarfile.open(ROOT / "models" / "default.stainless") as tar:
        member = tar.extractfile("model.fp32.onnx")
        if member is None:
            raise SystemExit("models/default.stainless has no model.fp32.onnx")
        onnx_bytes = member.read()
    static = OnnxRuntimeBackend(onnx_bytes, threads=threads, label="default (64 px)")
    halo = measure_halo(static.infer, static.in_channels, static.patch_size)
    static.close()
    backend = OnnxRuntimeBackend(free_spatial_dims(onnx_bytes), threads=threads, label="default (any size)")
    raw, norm = sim_field(size, seed)

    def prepare(x: NDArray[np.uint16]) -> NDArray[np.float32]:
        return normalise(x, norm)

    ref, t_ref = _timed(lambda: backend.infer(prepare(raw)[None])[0])
    edge = np.zeros((size, size), bool)
    edge[:8], edge[-8:], edge[:, :8], edge[:, -8:] = True, True, True, True
    auto = halo_tile(size, halo, max_tile)
    methods: dict[str, Any] = {}
    for method in METHODS:
        t = auto if method == "halo" else tile
        plan = plan_tiles((size, size), t, method, halo)
        out, dt = _timed(lambda plan=plan: stain_field(raw, backend.infer, plan, prepare))
        diff = np.abs(out - ref)
        methods[method] = {
            "tile": t, "tiles": plan.n_tiles, "seam_mae": float(diff[:, plan.seam_mask(2)].mean()),
            "mae": float(diff.mean()), "max_abs": float(diff.max()), "border_mae": float(diff[:, edge].mean()),
            "compute_ratio": round(plan.compute_ratio, 4), "time_ratio": round(dt / t_ref, 3),
            "seconds": round(dt, 2)}
    backend.close()
    cost = field_stain_cost(onnx_bytes, field_sizes, max_tile, threads)
    h = methods["halo"]
    return {"field_px": [size, size], "model": "models/default.stainless (fp32)", "halo_px": halo,
            "untiled_s": round(t_ref, 2), "threads": threads, "methods": methods, "field_stain": cost,
            "target": {"seam_mae": SEAM_TARGET, "compute_ratio": COMPUTE_TARGET,
                       "met": h["seam_mae"] <= SEAM_TARGET and h["compute_ratio"] <= COMPUTE_TARGET}}


def field_stain_cost(onnx_bytes: bytes, sizes: list[tuple[int, int]], max_tile: int, threads: int) -> dict[str, Any]:
    """ms per field of the daemon's whole-field stain vs ms per 64 px cell of the same model."""
    static = OnnxRuntimeBackend(onnx_bytes, threads=threads, label="default (64 px)")
    cells = np.random.default_rng(1).random((8, static.in_channels, static.patch_size, static.patch_size),
                                            dtype=np.float32)
    static.infer(cells)
    ms_cell = min(_timed(lambda: static.infer(cells))[1] for _ in range(3)) * 1e3 / len(cells)
    static.close()
    norm = Normalisation.uniform(44, 16.0, 4079.0)
    stainer = FieldStainer(FieldStainConfig(enabled=True, max_tile_px=max_tile),
                           OnnxRuntimeBackend(free_spatial_dims(onnx_bytes), threads=threads), 132, norm,
                           (-0.01, 1.01))
    out: dict[str, Any] = {"ms_per_cell": round(ms_cell, 2), "halo_px": stainer.halo, "fields": {}}
    for w, h in sizes:
        raw = np.random.default_rng(2).integers(16, 1200, (44, 3, h, w), dtype=np.uint16)
        (stained, info), dt = _timed(lambda raw=raw: stainer.stain(raw))
        out["fields"][f"{w}x{h}"] = {"ms": round(dt * 1e3, 1), "cells_equivalent": round(dt * 1e3 / ms_cell, 1),
                                     "compute_ratio": info["compute_ratio"], "tiles": info["tiles"],
                                     "tile": info["tile"], "payload_bytes": int(stained.nbytes)}
    stainer.close()
    return out


def _table(res: dict[str, Any]) -> str:
    lines = [f"field {res['field_px'][0]}x{res['field_px'][1]}, {res['model']}, measured halo {res['halo_px']} px, "
             f"untiled pass {res['untiled_s']} s ({res['threads']} thread(s))",
             f"{'method':<14} {'tile':>9} {'tiles':>5} {'seam_mae':>10} {'mae':>10} {'max_abs':>9} "
             f"{'border_mae':>10} {'compute':>8} {'time':>6}"]
    for name, m in res["methods"].items():
        tile = m["tile"] if isinstance(m["tile"], int) else f"{m['tile']}"
        lines.append(f"{name:<14} {tile!s:>9} {m['tiles']:>5} {m['seam_mae']:>10.2e} {m['mae']:>10.2e} "
                     f"{m['max_abs']:>9.2e} {m['border_mae']:>10.2e} {m['compute_ratio']:>7.3f}x "
                     f"{m['time_ratio']:>5.2f}x")
    fs = res["field_stain"]
    for size, f in fs["fields"].items():
        lines.append(f"[field_stain] {size}: {f['ms']} ms per field = {f['cells_equivalent']} cells at "
                     f"{fs['ms_per_cell']} ms/cell; {f['tiles']} tiles {f['tile']}, compute {f['compute_ratio']}x, "
                     f"payload {f['payload_bytes'] / 1e6:.2f} MB")
    t = res["target"]
    lines.append(f"target (halo): seam_mae <= {t['seam_mae']:.4f} at compute <= {t['compute_ratio']}x: "
                 f"{'met' if t['met'] else 'NOT met'}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=1024, help="field side (px)")
    ap.add_argument("--tile", type=int, default=256, help="window of the seed's three methods (px)")
    ap.add_argument("--max-tile", type=int, default=512, help="largest window of the halo method (px)")
    ap.add_argument("--field-stain", default="256x256", help="comma list of WxH daemon field sizes to cost")
    ap.add_argument("--threads", type=int, default=1, help="ONNX Runtime intra-op threads")
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    sizes = [tuple(int(v) for v in s.split("x")) for s in args.field_stain.split(",") if s]
    res = run(args.size, args.tile, args.max_tile, args.threads, args.seed, [(w, h) for w, h in sizes])
    print(json.dumps(res, indent=1) if args.json else _table(res))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
