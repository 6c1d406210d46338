"""Per-cell fidelity: does the stained output keep the structures the unstained input shows?

Both seeds' failure mode is a structure added or removed — above all a nucleus. Nuclei and granules
are what scatter light to high angles, and what a Romanowsky stain darkens most. So the input's
structure map is the high-angle darkfield energy of the crop and the output's is its darkness
(1 − grey); both are rescaled to [0, 1] per patch and compared with the two torch-free measures of
seed 003:

* grey-level **SSIM** (:func:`core.measures.ssim`, whole patch; 1 = same structure);
* the **chi-squared distance of LBP histograms** (:func:`core.measures.chi2_distance`;
  rotation-invariant uniform patterns, 8 neighbours at radius 1; 0 = same texture statistics).

A cell is ``suspect`` when SSIM < ``ssim_min`` or chi² > ``chi2_max``; ``stainless-edge
calibrate-fidelity`` picks both thresholds on the virtual bench with injected nucleus removals.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray

from core.measures import chi2_distance, ssim
from edge.device.config import FidelityConfig

_LBP_BINS = 10  # riu2 with P = 8: 9 uniform patterns + "other"


@dataclass(frozen=True)
class Fidelity:
    ssim: float
    chi2: float
    suspect: bool


def rescale(x: NDArray[np.float32]) -> NDArray[np.float32]:
    """Min–max to [0, 1] (a flat patch becomes 0)."""
    x = x.astype(np.float32)
    lo, hi = float(x.min()), float(x.max())
    return np.asarray((x - lo) / np.float32(hi - lo) if hi > lo else np.zeros_like(x), np.float32)


_OFFSETS = ((0, 1), (-1, 1), (-1, 0), (-1, -1), (0, -1), (1, -1), (1, 0), (1, 1))  # circular order


def lbp_riu2(x: NDArray[np.float32]) -> NDArray[np.uint8]:
    """Rotation-invariant uniform LBP codes (0..9) of a grey image ``(H, W)``, P = 8, R = 1 (borders mirrored
    without repeating the edge pixel)."""
    x = np.asarray(x, np.float32)
    h, w = x.shape
    p = (cv2.copyMakeBorder(x, 1, 1, 1, 1, cv2.BORDER_REFLECT_101) if min(h, w) >= 2
         else np.pad(x, 1, mode="reflect"))
    c = p[1:h + 1, 1:w + 1]
    bits = np.empty((8, h, w), np.bool_)
    for k, (dy, dx) in enumerate(_OFFSETS):
        np.greater_equal(p[1 + dy:h + 1 + dy, 1 + dx:w + 1 + dx], c, out=bits[k])
    ones = bits.sum(axis=0, dtype=np.uint8)
    transitions = (bits[1:] != bits[:-1]).sum(axis=0, dtype=np.uint8) + (bits[0] != bits[7])
    return np.where(transitions <= 2, ones, np.uint8(_LBP_BINS - 1)).astype(np.uint8)


def lbp_histogram(x: NDArray[np.float32]) -> NDArray[np.float64]:
    h = np.bincount(lbp_riu2(x).ravel(), minlength=_LBP_BINS).astype(np.float64)
    return h / max(h.sum(), 1.0)


def structure_maps(scatter: NDArray[np.float32], stained: NDArray[np.float32]) -> tuple[NDArray[np.float32],
                                                                                         NDArray[np.float32]]:
    """Input map (rescaled scattering energy ``(P, P)``) and output map (rescaled darkness of the
    stained RGB ``(3, P, P)`` in [0, 1])."""
    darkness = 1.0 - stained.astype(np.float32).mean(axis=0)
    return rescale(scatter), rescale(darkness)


def score(scatter: NDArray[np.float32], stained: NDArray[np.float32], config: FidelityConfig) -> Fidelity:
    """Fidelity of one cell: ``scatter`` ``(P, P)`` from the input, ``stained`` ``(3, P, P)`` output."""
    a, b = structure_maps(scatter, stained)
    s = ssim(a, b, crop=False)
    c = chi2_distance(lbp_histogram(a), lbp_histogram(b))
    return Fidelity(s, c, bool(s < config.ssim_min or c > config.chi2_max))
