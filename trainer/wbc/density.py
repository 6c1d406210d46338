"""The learned white-cell finders' input, torch-free: normalised stain density at 1 µm per pixel.

The optical density against the image's own flat field (:mod:`trainer.wbc.flatfield`: tint,
exposure and vignetting drop out, the black field stop is masked), resampled to ``WORK_UM`` µm per
pixel, each channel divided by its median over the stained material (red cells dominate it), so
every lab's red cells look alike and a nucleus stands out by how much more it absorbs, whatever the
stain's hue or strength. Shared by ``net`` (:mod:`trainer.wbc.net`) and ``cnn``
(:mod:`trainer.wbc.cnn`); :func:`peaks` turns their heat maps into cell centres.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import cv2
import numpy as np
from numpy.typing import NDArray
from scipy import ndimage as ndi

from trainer.wbc.flatfield import optical_density_ff

WORK_UM = 1.0  # µm per pixel the finders see
NMS_UM = 6.0  # two cells' centres are at least this far apart
CUT_UM = 6.0  # a centre this close to the image border or the field stop: the cell is cut
MATERIAL_OD = 0.06


class Density(NamedTuple):
    """The normalised density at ``WORK_UM`` and what the second check needs at full resolution."""

    density: NDArray[np.float32]  # (3, h, w) at WORK_UM, OD over the material's median per channel
    field: NDArray[np.bool_]  # (h, w) inside the illuminated field
    zoom: float  # work px per image px
    od: NDArray[np.float32]  # (3, H, W) OD against the flat field, image pixels (0 outside the field)
    field_full: NDArray[np.bool_]  # (H, W)
    ref: NDArray[np.float32]  # (3,) the material's median OD per channel (the divisor of ``density``)


def density_input(rgb: NDArray[Any], pixel_size_um: float) -> Density:
    """:func:`net_input` with the full-resolution OD, field and per-channel reference kept."""
    od, ff = optical_density_ff(rgb, pixel_size_um=pixel_size_um)
    zoom = pixel_size_um / WORK_UM
    h, w = od.shape[1:]
    size = (max(round(w * zoom), 8), max(round(h * zoom), 8))
    small = np.stack([cv2.resize(c, size, interpolation=cv2.INTER_AREA) for c in od])
    field = cv2.resize(ff.field.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST) > 0
    material = small.sum(axis=0) > MATERIAL_OD
    ref = np.maximum(np.array([np.median(c[material]) if material.sum() > 50 else 0.1 for c in small], np.float32),
                     0.02)
    feats = np.clip(small / ref[:, None, None], 0, 20).astype(np.float32)
    return Density(feats, field, zoom, od, ff.field, ref)


def net_input(rgb: NDArray[Any], pixel_size_um: float) -> tuple[NDArray[np.float32], NDArray[np.bool_], float]:
    """``(density (3, h, w), field (h, w), zoom)`` at ``WORK_UM`` of a linear RGB image ``(3, H, W)``.

    ``density``: OD per channel over the material's median OD (red cells ≈ 1), clipped to [0, 20];
    ``field``: inside the illuminated field; ``zoom``: work px per image px."""
    d = density_input(rgb, pixel_size_um)
    return d.density, d.field, d.zoom


def peaks(prob: NDArray[np.float32], threshold: float, nms_px: float) -> list[tuple[int, int, float]]:
    """Local maxima ``(row, col, p)`` of ``prob`` above ``threshold``, at least ``nms_px`` apart."""
    size = max(round(2 * nms_px) | 1, 3)
    local = (prob == ndi.maximum_filter(prob, size=size)) & (prob >= threshold)
    rows, cols = np.nonzero(local)
    return [(int(r), int(c), float(prob[r, c])) for r, c in zip(rows, cols, strict=True)]


def near_edge(field: NDArray[np.bool_], reach_px: float = CUT_UM / WORK_UM) -> NDArray[np.bool_]:
    """Pixels within ``reach_px`` of the image border or the field stop ``(h, w)``."""
    inner = ndi.binary_erosion(np.pad(field, 1), iterations=max(round(reach_px), 1))[1:-1, 1:-1]
    return np.asarray(~inner)


def to_image_px(row: int, col: int, zoom: float) -> tuple[float, float]:
    """Image-pixel ``(x, y)`` of a work-pixel ``(row, col)`` (pixel centres at integers)."""
    return (col + 0.5) / zoom - 0.5, (row + 0.5) / zoom - 0.5
