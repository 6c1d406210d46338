"""Scoring a white-cell finder against simulator truth (benchmarks and tests).

* :func:`jitter_to_srgb8` — a held-out "photograph" of a simulated stained frame: a lab's and a
  camera's variation (white balance, exposure, hue, saturation) and 8-bit sRGB encoding;
* :func:`match_cells` — one-to-one matching of found cells to true cells within each cell's radius.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

#: The simulator's camera pixel (µm) at 20x.
PIXEL_UM = 0.293


def jitter_to_srgb8(rgb: NDArray[np.uint16], rng: np.random.Generator) -> NDArray[np.uint8]:
    """A lab/camera-varied photograph of a raw frame ``(3, H, W)``: white balance, exposure, hue
    rotation, saturation, then sRGB 8-bit encoding. Returns ``(3, H, W)`` uint8."""
    x = np.clip((rgb.astype(np.float32) - 16) / (4095 - 16), 0, 1)
    x = np.clip(x * rng.uniform(0.75, 1.25, 3)[:, None, None] * rng.uniform(0.8, 1.3), 0, 1).astype(np.float32)
    hsv = cv2.cvtColor(np.ascontiguousarray(np.moveaxis(x, 0, -1)), cv2.COLOR_RGB2HSV)
    hsv[..., 0] = (hsv[..., 0] + rng.uniform(-25, 25)) % 360
    hsv[..., 1] = np.clip(hsv[..., 1] * rng.uniform(0.6, 1.5), 0, 1)
    lin = cv2.cvtColor(hsv.astype(np.float32), cv2.COLOR_HSV2RGB)
    enc = np.where(lin <= 0.0031308, lin * 12.92, 1.055 * np.power(lin, 1 / 2.4) - 0.055)
    return np.moveaxis(np.clip(enc * 255 + 0.5, 0, 255).astype(np.uint8), -1, 0)


def match_cells(found: list[Any], truth: list[dict[str, Any]], pixel_um: float = PIXEL_UM) -> tuple[int, int, int]:
    """(true positives, false positives, false negatives): a detection matches a cell when within
    its radius; cells whose centre is off the frame may be found but need not be."""
    from scipy.optimize import linear_sum_assignment

    if not found or not truth:
        return 0, len(found), sum(t["inside"] for t in truth)
    d = np.array([[np.hypot(c.x - t["center_px"][0], c.y - t["center_px"][1]) * pixel_um for t in truth]
                  for c in found])
    rows, cols = linear_sum_assignment(d)
    pairs = [(i, j) for i, j in zip(rows, cols, strict=True) if d[i, j] <= truth[j]["radius_um"]]
    matched_truth = {j for _, j in pairs}
    tp = sum(truth[j]["inside"] for j in matched_truth)
    fn = sum(t["inside"] and j not in matched_truth for j, t in enumerate(truth))
    return tp, len(found) - len(pairs), fn
