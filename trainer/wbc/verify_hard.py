"""Hard negatives of the white-cell verifier by appearance: non-cells with no nucleus-sized dark body (torch-free).

Out of fold, most of the shipped verifier's confident false alarms on pig/train are platelets and platelet
clumps (small dark bodies), smudged or burst cells and pale stain deposits (no dense body at all). Both
kinds are told apart from a white cell by the body at the crop's centre, measured on the verifier's own
input (normalised density, red cells ≈ 1 per channel, so it holds for any lab's stain):

- ``peak``: the highest total density (3 channels, smoothed by ``SMOOTH_PX``) within ``CORE_UM`` of the
  centre, where the first stage put the candidate;
- ``area``: the area (µm²) of the connected region around that peak that reaches ``LEVEL`` x the peak
  (a scale-free outline: the same for a pale and a strong stain).

A negative crop is *hard* (:func:`hard_negatives`) when its body is smaller than nearly every labelled
cell's (``area`` below the ``PERCENTILE``-th percentile of the same folder's positives: platelet-like) or
paler (``peak`` below that percentile of theirs: smudge-like). The limits come from the training crops
themselves, so no number is tuned to a lab; unboxed intact cells and cut cells have a nucleus and are not
picked (they are label conventions, not confusers to push down).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage as ndi

from trainer.wbc.verify import VERIFY_UM

CORE_UM = 3.0  # half side of the square where the body's peak is looked for
WINDOW_UM = 10.0  # half side of the window the body may fill
SMOOTH_PX = 1.0  # Gaussian σ on the total density before measuring (crop px)
LEVEL = 0.6  # the body's outline, as a share of its peak density
PERCENTILE = 5.0  # of the positives' peak and area: below it a negative counts as hard
_SLICES = np.zeros((3, 3, 3), bool)
_SLICES[1] = ndi.generate_binary_structure(2, 1)  # label each crop on its own (no links across crops)


def dark_body(x: NDArray[np.floating]) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """``(peak, area µm²)`` ``(k,)`` of the dark body at the centre of crops ``(k, 4, s, s)`` (density
    channels first, field mask last; any side ``s`` ≥ the window, centred on the candidate)."""
    if x.ndim != 4 or x.shape[1] != 4:
        raise ValueError(f"expected verifier crops (k, 4, side, side), found shape {x.shape}")
    half, core, pad = round(WINDOW_UM / VERIFY_UM), round(CORE_UM / VERIFY_UM), 4
    c0 = x.shape[2] // 2
    if c0 < half + pad:
        raise ValueError(f"expected crops at least {2 * (half + pad)} px wide, found {x.shape[2]}")
    peak = np.zeros(len(x), np.float32)
    area = np.zeros(len(x), np.float32)
    for lo in range(0, len(x), 512):
        part = x[lo:lo + 512, :3, c0 - half - pad:c0 + half + pad, c0 - half - pad:c0 + half + pad]
        tot = ndi.gaussian_filter(part.astype(np.float32).sum(axis=1), (0, SMOOTH_PX, SMOOTH_PX))[:, pad:-pad, pad:-pad]
        centre = tot[:, half - core:half + core, half - core:half + core].reshape(len(tot), -1)
        top = centre.argmax(axis=1)
        r, c = top // (2 * core) + half - core, top % (2 * core) + half - core
        p = centre.max(axis=1)
        labels, _ = ndi.label(tot >= LEVEL * p[:, None, None], _SLICES)
        ids = labels[np.arange(len(tot)), r, c]
        counts = np.bincount(labels.ravel(), minlength=int(ids.max()) + 1)
        peak[lo:lo + len(tot)] = p
        area[lo:lo + len(tot)] = counts[ids] * VERIFY_UM ** 2
    return peak, area


def hard_negatives(x: NDArray[np.floating], y: NDArray[np.floating], percentile: float = PERCENTILE
                   ) -> NDArray[np.bool_]:
    """``(k,)``: which crops ``x`` ``(k, 4, s, s)`` with labels ``y`` ``(k,)`` (1 = cell) are hard negatives
    (module doc): a non-cell whose dark body is smaller or paler than ``percentile`` % of the cells'."""
    y = np.asarray(y)
    if len(x) != len(y):
        raise ValueError(f"expected one label per crop, found {len(x)} crops and {len(y)} labels")
    cells = y > 0.5
    if not cells.any() or cells.all():
        return np.zeros(len(y), bool)
    peak, area = dark_body(x)
    small = area < np.percentile(area[cells], percentile)
    pale = peak < np.percentile(peak[cells], percentile)
    return ~cells & (small | pale)
