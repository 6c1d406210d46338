"""What a style model did: how far the colour moved toward the target style, and whether nuclei stayed.

* **Colour**: the mean optical-density chromaticity ``OD_c / Σ OD`` over stained pixels (total OD
  above :data:`STAINED_OD`) of a set of images, a 3-vector independent of stain strength; its hue
  angle (degrees, in the chromaticity plane) summarises it. ``shift`` = 1 − d(out, B) / d(A, B):
  0 when the output kept A's colour, 1 when it reached B's.
* **Nuclei**: :func:`trainer.nucleus.nucleus_fidelity` of each output against its own input (IoU
  of the nucleus masks, nuclear components added / removed) — a style must move colour, not nuclei.
* **Paired truth** (synthetic cells only, :func:`paired_scores`): the same cells rendered in the
  target style give SSIM / MAE of the output against the truth, next to the input's own, and the
  nucleus IoU between the two true renderings — the ceiling of the before/after IoU.

Images are ``(N, 3, H, W)`` float arrays in [0, 1].
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

from trainer.errors import TrainerError
from trainer.metrics import mae, ssim
from trainer.nucleus import nucleus_fidelity, optical_density

STAINED_OD = 0.15


def chromaticity(images: NDArray[np.floating[Any]]) -> NDArray[np.float64]:
    """Mean OD chromaticity ``(3,)`` over the stained pixels of all ``images``."""
    rows = []
    for img in images:
        od = optical_density(np.moveaxis(np.asarray(img, np.float64), 0, -1)).reshape(-1, 3)
        total = od.sum(axis=1)
        keep = total > STAINED_OD
        if keep.any():
            rows.append(od[keep] / total[keep, None])
    if not rows:
        return np.full(3, 1.0 / 3.0)
    return np.concatenate(rows).mean(axis=0)


def hue_deg(chroma: NDArray[np.float64]) -> float:
    """Angle (degrees, 0..360) of a chromaticity in the plane of constant sum, measured from red."""
    r, g, b = chroma
    return float(math.degrees(math.atan2(math.sqrt(3.0) * (g - b), 2.0 * r - g - b)) % 360.0)


def colour_shift(a: NDArray[Any], out: NDArray[Any], b: NDArray[Any]) -> dict[str, Any]:
    """Chromaticities, hues and the fraction of the A → B colour distance the output covered."""
    ca, co, cb = chromaticity(a), chromaticity(out), chromaticity(b)
    d_ab = float(np.linalg.norm(ca - cb))
    d_ob = float(np.linalg.norm(co - cb))
    return {"chroma_a": ca.round(4).tolist(), "chroma_out": co.round(4).tolist(), "chroma_b": cb.round(4).tolist(),
            "hue_a_deg": hue_deg(ca), "hue_out_deg": hue_deg(co), "hue_b_deg": hue_deg(cb),
            "distance_ab": d_ab, "distance_out_b": d_ob, "shift": 1.0 - d_ob / d_ab if d_ab > 0 else 0.0}


def nucleus_stability(a: NDArray[Any], out: NDArray[Any]) -> dict[str, float]:
    """Mean nucleus IoU of each output against its input, and the fraction of cells with a nuclear
    component added or removed (only meaningful for RGB stained inputs)."""
    rows = [nucleus_fidelity(np.moveaxis(o, 0, -1), np.moveaxis(x, 0, -1)) for x, o in zip(a, out, strict=True)]
    return {"nucleus_iou": float(np.mean([r["nucleus_iou"] for r in rows])),
            "nucleus_iou_min": float(np.min([r["nucleus_iou"] for r in rows])),
            "flagged": float(np.mean([r["flagged"] for r in rows])), "cells": float(len(rows))}


def style_report(a: NDArray[Any], out: NDArray[Any], b: NDArray[Any]) -> dict[str, Any]:
    """:func:`colour_shift` and :func:`nucleus_stability` together (empty for non-RGB A images)."""
    if a.shape[1] != 3:
        return {}
    return {**colour_shift(a, out, b), **nucleus_stability(a, out)}


def paired_scores(a: NDArray[Any], out: NDArray[Any], truth_b: NDArray[Any]) -> dict[str, float]:
    """Output and input against the same cells rendered in the target style: SSIM, MAE, and the
    nucleus IoU of the true A and B renderings (how much the stain change alone moves the masks)."""
    pairs = list(zip(a, out, truth_b, strict=True))  # (C, H, W) each, as trainer.metrics expects
    return {"ssim_out_truth": float(np.mean([ssim(o, t) for _, o, t in pairs])),
            "ssim_in_truth": float(np.mean([ssim(x, t) for x, _, t in pairs])),
            "mae_out_truth": float(np.mean([mae(o, t) for _, o, t in pairs])),
            "mae_in_truth": float(np.mean([mae(x, t) for x, _, t in pairs])),
            "nucleus_iou_truth_ab": nucleus_stability(a, truth_b)["nucleus_iou"]}


def change_image(before: NDArray[Any], after: NDArray[Any], gain: float = 8.0) -> NDArray[Any]:
    """``0.5 + gain·(after − before)``: mid-grey where nothing changed, the colour of the change amplified."""
    return np.clip(0.5 + gain * (np.asarray(after) - np.asarray(before)), 0.0, 1.0)


def before_after_strip(rows: list[NDArray[Any]], n: int = 8, gap: int = 2) -> NDArray[np.uint8]:
    """An RGB uint8 image of ``rows`` (each ``(N, 3, P, P)``), the first ``n`` images of each side by side;
    the callers use: A (before), the output (after), B, and the amplified change (:func:`change_image`)."""
    tiles = [[np.moveaxis(np.clip(t, 0, 1), 0, -1) for t in imgs[:n]] for imgs in rows]
    p = tiles[0][0].shape[0]
    sheet = np.ones((len(rows) * (p + gap) - gap, n * (p + gap) - gap, 3))
    for r, row in enumerate(tiles):
        for i, t in enumerate(row):
            sheet[r * (p + gap):r * (p + gap) + p, i * (p + gap):i * (p + gap) + p] = t
    return np.rint(sheet * 255).astype(np.uint8)


def save_strip(path: Path, rgb: NDArray[np.uint8]) -> None:
    """Write an RGB strip as PNG."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)):
        raise TrainerError(f"cannot write {path}")
