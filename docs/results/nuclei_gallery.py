"""Unstained white cells in simulated brightfield: one row of the gallery, with the simulator as it is.

Renders a smear under the thesis-43 brightfield pattern (20x / 0.4), one white cell per type,
writes a PNG row and prints the nucleus-vs-cytoplasm brightfield contrast (mean grey over each
structure, relative). Run it on two checkouts (before/after a physics change) and stack the rows.

    python docs/results/nuclei_gallery.py --out out/nuclei-after.png [--json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np

from firmware_bridge.rigs import get_profile
from sim.maps import STRUCTURES, WBC_TYPES
from sim.microscope import Microscope
from sim.rasterize import rasterize
from sim.sample import SmearConfig, make_smear, wbc_truth

CROP_PX = 64
TILE = 128


def _render(config: SmearConfig, size_px: int, seed: int) -> tuple[np.ndarray, np.ndarray, list[dict]]:
    m = Microscope(get_profile("thesis-43"))
    smear = make_smear((size_px * m.pixel_um,) * 2, seed, config)
    maps = rasterize(smear, m.fine_pixel_um, m.fine_shape((size_px, size_px)))
    intensity, _ = m.prepare(maps).lit_intensity(m.geometry.brightfield_indices)
    labels = rasterize(smear, m.pixel_um, (size_px, size_px))
    cells = [dict(w, px=(w["center_um"][0] / m.pixel_um, w["center_um"][1] / m.pixel_um)) for w in wbc_truth(smear)]
    return intensity, labels.structure, cells


def _contrast(intensity: np.ndarray, structure: np.ndarray) -> float:
    """Mean brightfield (grey) of cytoplasm minus nucleus, over the cytoplasm's level."""
    grey = intensity.mean(axis=0)
    nuc, cyt = grey[structure == STRUCTURES["nucleus"]], grey[structure == STRUCTURES["cytoplasm"]]
    return float((cyt.mean() - nuc.mean()) / cyt.mean())


def _tiles(intensity: np.ndarray, cells: list[dict]) -> list[np.ndarray]:
    h = intensity.shape[1]
    out = []
    for wbc_type in WBC_TYPES:
        lo, hi = CROP_PX // 2, h - CROP_PX // 2
        cell = next((c for c in cells if c["type"] == wbc_type and lo <= c["px"][0] < hi and lo <= c["px"][1] < hi),
                    None)
        tile = np.full((TILE, TILE, 3), 255, np.uint8)
        if cell is not None:
            x, y = (int(v) for v in cell["px"])
            crop = intensity[::-1, y - CROP_PX // 2 : y + CROP_PX // 2, x - CROP_PX // 2 : x + CROP_PX // 2]
            rgb = np.clip(np.moveaxis(crop, 0, -1) / 1.1 * 255, 0, 255).astype(np.uint8)  # BGR for OpenCV
            tile = cv2.resize(rgb, (TILE, TILE), interpolation=cv2.INTER_NEAREST)
        cv2.putText(tile, wbc_type[:5], (3, 12), cv2.FONT_HERSHEY_SIMPLEX, 0.38, (0, 0, 0), 1, cv2.LINE_AA)
        out.append(tile)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=Path("out/nuclei-gallery.png"))
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--seed", type=int, default=4)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    config = SmearConfig(wbc_per_mm2=2500.0, wbc_fractions=(0.2, 0.2, 0.2, 0.2, 0.2))  # every type shows
    intensity, structure, cells = _render(config, args.size, args.seed)
    report = {"nucleus_contrast": round(_contrast(intensity, structure), 4),
              "bf_contrast_std_over_mean": round(float(intensity.std() / intensity.mean()), 4), "png": str(args.out)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(args.out), np.hstack(_tiles(intensity, cells)))
    print(json.dumps(report) if args.json else "\n".join(f"{k}: {v}" for k, v in report.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
