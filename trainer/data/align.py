"""Crops around a cell and the fine alignment of the stained crop (seed 000, 3.1.3).

After coarse registration a residual of a few pixels may remain locally; the seed slid each 64x64
stained crop ±5 px over the unstained brightfield and kept the offset of highest SSIM. Here the
stained image is resampled straight into the unstained pixel grid through the registration map
(one interpolation), the SSIM surface over the ±``search_px`` window is computed on grey images,
its peak refined to subpixel, and the target crop is resampled once more at the refined offset.

Conventions: unstained pixel grid, pixel centres at integers; a crop of size P with top-left
``(x0, y0)`` covers columns ``x0 .. x0+P-1``.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray

from core.measures import ssim
from trainer.data.registration import grey, ncc_peak

#: SSIM constants for images normalised to a background of 1 (data range ~1).


def warp_window(stained: NDArray[np.uint16], matrix: NDArray[np.float64], x0: float, y0: float,
                size: int) -> NDArray[np.uint16]:
    """Stained pixels ``(C, size, size)`` resampled onto the unstained window whose top-left is
    ``(x0, y0)`` (may be fractional), through the unstained → stained ``matrix`` (2, 3)."""
    m = matrix.copy()
    m[:, 2] = matrix[:, :2] @ np.array([x0, y0]) + matrix[:, 2]
    img = np.ascontiguousarray(np.moveaxis(stained, 0, -1))
    out = cv2.warpAffine(img, m, (size, size), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                         borderMode=cv2.BORDER_REPLICATE)
    return np.ascontiguousarray(np.moveaxis(out.reshape(size, size, -1), -1, 0))


def ssim_by_offset(moving: NDArray[np.float32], reference: NDArray[np.float32], radius: int) -> NDArray[np.float32]:
    """Mean SSIM ``(2r+1, 2r+1)`` of ``reference`` (P, P) against every window of ``moving``
    (P+2r, P+2r); entry [r+dy, r+dx] compares ``moving[r+dy:, r+dx:]`` (:func:`core.measures.ssim`,
    whole window)."""
    p = reference.shape[0]
    out = np.empty((2 * radius + 1, 2 * radius + 1), np.float32)
    for dy in range(2 * radius + 1):
        for dx in range(2 * radius + 1):
            out[dy, dx] = ssim(moving[dy:dy + p, dx:dx + p], reference, crop=False)
    return out


@dataclass(frozen=True)
class FineAlignment:
    """Offset (px) of the stained content against the unstained crop and the SSIM scores."""

    dx: float
    dy: float
    ssim: float  # at the chosen offset (integer peak)
    ssim_zero: float  # at offset 0 (what coarse registration alone gives)


def fine_align(stained: NDArray[np.uint16], unstained_bf: NDArray[np.uint16], matrix: NDArray[np.float64],
               x0: int, y0: int, size: int, radius: int, subpixel: bool = True,
               stained_black: float = 0.0, unstained_black: float = 0.0, min_gain: float = 0.0) -> FineAlignment:
    """Fine alignment of the crop at ``(x0, y0)`` (size P) by SSIM over ±``radius`` px.

    ``unstained_bf`` is the whole brightfield frame ``(C, H, W)``; the crop must lie inside it. The
    offset is kept at 0 unless it raises SSIM by ``min_gain`` (SSIM between stained and unstained
    images is flat near the optimum; a registered field should not be moved by its noise).
    """
    reference = grey(unstained_bf[:, y0:y0 + size, x0:x0 + size], unstained_black)
    big = warp_window(stained, matrix, x0 - radius, y0 - radius, size + 2 * radius)
    moving = grey(big, stained_black)
    # Normalise both by the crop's own background estimate so brightness does not enter SSIM.
    scores = ssim_by_offset(moving, reference, radius)
    if subpixel:
        px, py, best = ncc_peak(scores)
    else:
        iy, ix = np.unravel_index(int(np.argmax(scores)), scores.shape)
        px, py, best = float(ix), float(iy), float(scores.max())
    zero = float(scores[radius, radius])
    if best - zero < min_gain:  # registration alone is as good: do not chase SSIM noise
        return FineAlignment(0.0, 0.0, zero, zero)
    return FineAlignment(float(px) - radius, float(py) - radius, float(best), zero)
