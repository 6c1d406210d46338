"""Illumination and white balance from the image's own background (flat field), and the field stop.

Photographs through a microscope are brighter in the middle, tinted by the lamp and the camera's
white balance, and often show the round eyepiece field stop as black. :func:`flat_field` estimates
the clear-glass level of every channel as a smooth map: the bright tail of each block of the image
(where there is no cell, the glass shows), median-filtered over blocks and interpolated back. The
optical density against that map does not depend on exposure, tint or vignetting.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import cv2
import numpy as np
from numpy.typing import NDArray
from scipy import ndimage as ndi

from core.measures import optical_density

#: A pixel darker than this fraction of the field's glass level lies outside the field stop.
OUTSIDE_FRACTION = 0.2
#: With the pixel size known, blocks are at least this wide, so that a block holds some glass: in a close-up an
#: eighth of the image lies inside one white cell, whose brightest part would pass for glass. 11 µm is the smallest
#: block the shipped finders were trained on (chula's 720x450 photographs at ~0.2 µm/px); wider floors change
#: their input on such photographs (20 µm costs `net` a fifth of chula's cells).
FLAT_BLOCK_UM = 11.0


class FlatField(NamedTuple):
    white: NDArray[np.float32]  # (3, H, W) clear-glass level per channel
    field: NDArray[np.bool_]  # (H, W) inside the illuminated field (False: field stop, black corners)


def _block_levels(lum: NDArray[np.float32], ch: NDArray[np.float32], block: int) -> NDArray[np.float32]:
    """Per block: median of ``ch`` over the block's brightest tenth of ``lum`` (NaN where no light)."""
    h, w = lum.shape
    nby, nbx = max(h // block, 1), max(w // block, 1)
    out = np.full((ch.shape[0], nby, nbx), np.nan, np.float32)
    ys = np.linspace(0, h, nby + 1).astype(int)
    xs = np.linspace(0, w, nbx + 1).astype(int)
    floor = np.float32(OUTSIDE_FRACTION * np.percentile(lum, 99))
    for i in range(nby):
        for j in range(nbx):
            lb = lum[ys[i]:ys[i + 1], xs[j]:xs[j + 1]]
            lit = lb > floor
            if lit.mean() < 0.3:
                continue
            top = lb >= np.percentile(lb[lit], 90)
            for c in range(ch.shape[0]):
                out[c, i, j] = np.median(ch[c, ys[i]:ys[i + 1], xs[j]:xs[j + 1]][top])
    return out


def _fill_nan(a: NDArray[np.float32]) -> NDArray[np.float32]:
    bad = ~np.isfinite(a)
    if bad.all():
        return np.ones_like(a)
    if bad.any():
        idx = ndi.distance_transform_edt(bad, return_distances=False, return_indices=True)
        a = a[tuple(idx)]
    return a


def flat_field(rgb: NDArray[Any], blocks: int = 8, pixel_size_um: float | None = None,
               min_block_um: float = FLAT_BLOCK_UM) -> FlatField:
    """Clear-glass level ``(3, H, W)`` of a linear RGB image ``(3, H, W)`` and its illuminated field.

    ``blocks`` is the number of blocks along the shorter side: the illumination is assumed smooth over a
    block, and every block must be a few cells across so that its brightest tenth is glass. An eighth of
    the image is that at the usual fields of view; a close-up (a field of a few cells, as many public
    white-cell sets are cut) needs blocks of at least ``min_block_um``, which only ``pixel_size_um``
    (µm per pixel) can set; without it the blocks are an eighth of the image.
    """
    x = np.asarray(rgb, np.float32)
    lum = x.mean(axis=0)
    floor = round(min_block_um / pixel_size_um) if pixel_size_um else 0
    block = max(min(lum.shape) // blocks, floor, 8)
    levels = _block_levels(lum, x, block)
    small = np.stack([_fill_nan(lv) for lv in levels])
    small = np.stack([ndi.median_filter(s, size=3, mode="nearest") for s in small])
    # Smooth on the block grid (half a block), not at full resolution: 40x cheaper on 1440x900.
    small = ndi.gaussian_filter(small, (0, 0.5, 0.5), mode="nearest")
    h, w = lum.shape
    white = np.stack([cv2.resize(s, (w, h), interpolation=cv2.INTER_LINEAR) for s in small])
    white = np.maximum(white, 1e-6).astype(np.float32)
    dark = lum < OUTSIDE_FRACTION * white.mean(axis=0)
    # The field stop is dark and touches the image border; dark cells inside the field do not.
    lab, _n = ndi.label(cv2.morphologyEx(dark.astype(np.uint8), cv2.MORPH_OPEN, np.ones((3, 3), np.uint8)))
    border = np.unique(np.concatenate([lab[0], lab[-1], lab[:, 0], lab[:, -1]]))
    big = [k for k in border[border > 0] if (lab == k).sum() > 0.002 * lum.size]
    outside = np.isin(lab, big)
    return FlatField(white, ~outside)


def optical_density_ff(rgb: NDArray[Any], ff: FlatField | None = None, pixel_size_um: float | None = None
                       ) -> tuple[NDArray[np.float32], FlatField]:
    """OD ``(3, H, W)`` (≥ 0, 0 outside the field) of a linear RGB image against its flat field (``ff``, or
    :func:`flat_field` at ``pixel_size_um``)."""
    ff = ff or flat_field(rgb, pixel_size_um=pixel_size_um)
    od = optical_density(np.asarray(rgb, np.float32), ff.white) * ff.field
    return od.astype(np.float32), ff
