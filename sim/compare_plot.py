"""The PNG of ``stainless-sim compare-real``: curves and images of the real stack and its simulation.

Top row: darkfield/brightfield by NA bin (log scale; real black, simulated red), and the radially
averaged power spectra of the brightfield and the darkfield image. Bottom row: the central-LED
brightfield and the darkfield image (NA ≈ 0.2), real then simulated, each stretched to its own
0.5–99.5th percentile.
"""

from __future__ import annotations

import math
from itertools import pairwise
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

PANEL = 256
REAL, SIM = (0, 0, 0), (0, 0, 200)  # BGR


def _canvas(title: str) -> NDArray[np.uint8]:
    img = np.full((PANEL + 24, PANEL, 3), 255, np.uint8)
    cv2.putText(img, title, (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (0, 0, 0), 1, cv2.LINE_AA)
    return img


Series = list[tuple[list[float | None], tuple[int, int, int]]]


def _curves(title: str, x: list[float], series: Series) -> NDArray[np.uint8]:
    """Log-y line plot of ``series`` over ``x`` on one panel."""
    img = _canvas(title)
    vals = [v for ys, _ in series for v in ys if v]
    lo, hi = math.log10(min(vals)), math.log10(max(vals))
    hi = hi if hi > lo else lo + 1.0
    x0, x1 = min(x), max(x)
    x1 = x1 if x1 > x0 else x0 + 1.0

    def pt(xv: float, yv: float) -> tuple[int, int]:
        return (int(12 + (PANEL - 24) * (xv - x0) / (x1 - x0)),
                int(24 + 10 + (PANEL - 30) * (hi - math.log10(yv)) / (hi - lo)))

    for ys, colour in series:
        pts = [pt(xv, yv) for xv, yv in zip(x, ys, strict=True) if yv]
        for a, b in pairwise(pts):
            cv2.line(img, a, b, colour, 2, cv2.LINE_AA)
        for p in pts:
            cv2.circle(img, p, 3, colour, -1)
    cv2.putText(img, f"log10 {lo:.1f}..{hi:.1f}", (4, PANEL + 20), cv2.FONT_HERSHEY_SIMPLEX, 0.38, (90, 90, 90), 1)
    return img


def _image(title: str, image: NDArray[np.float32]) -> NDArray[np.uint8]:
    img = _canvas(title)
    lo, hi = np.percentile(image, [0.5, 99.5])
    grey = np.clip((image - lo) / max(hi - lo, 1e-12) * 255, 0, 255).astype(np.uint8)
    img[24:, :] = cv2.cvtColor(cv2.resize(grey, (PANEL, PANEL), interpolation=cv2.INTER_NEAREST), cv2.COLOR_GRAY2BGR)
    return img


def write_compare_png(report: dict[str, Any], real: NDArray[np.float32], sim: NDArray[np.float32],
                      centre: int, darkfield: int, path: str | Path) -> Path:
    """Draw the comparison; ``centre``/``darkfield`` are the image indices shown."""
    bins = report["bins"]
    mids = [0.5 * (b["na_lo"] + b["na_hi"]) for b in bins]
    spec = report["spectra"]
    top = [
        _curves("DF/BF by NA (black real, red sim)", mids,
                [([b["real_df_bf"] for b in bins], REAL), ([b["sim_df_bf"] for b in bins], SIM)]),
        _curves("BF power spectrum vs cyc/um", spec["spectrum_bf"]["freq_per_um"],
                [(spec["spectrum_bf"]["real"], REAL), (spec["spectrum_bf"]["sim"], SIM)]),
        _curves(f"DF power spectrum (NA {report['spectrum_df_na']:.2f})", spec["spectrum_df"]["freq_per_um"],
                [(spec["spectrum_df"]["real"], REAL), (spec["spectrum_df"]["sim"], SIM)]),
        _canvas(f"{report['wavelength_nm']:.0f} nm, defocus {report['defocus_um']:.0f} um"),
    ]
    c = report["bf_contrast"]
    bottom = [_image(f"real BF  contrast {c['real']:.2f}", real[centre]),
              _image(f"sim BF  contrast {c['sim']:.2f}", sim[centre]),
              _image("real DF", real[darkfield]), _image("sim DF", sim[darkfield])]
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(out), np.vstack([np.hstack(top), np.hstack(bottom)])):
        raise OSError(f"could not write {out}")
    return out
