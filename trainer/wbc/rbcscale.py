"""Pixel size from the red cells: ``--pixel-size-um auto``.

In a thin smear a red cell is a disc about 7.5–8 µm across (``RBC_DIAMETER_UM``). The stained
material (optical density against the image's own flat field) is split into connected parts; the
parts that are single round cells (solid, not elongated, holes filled so the pale centre counts)
give their equivalent diameter in pixels, and the median of those fixes the scale. Piled red cells
form non-convex parts and are ignored; white cells are too few to move the median. An image with
fewer than ``min_cells`` single red cells (a thick or empty field, a close-up of one cell) is
refused with :class:`ScaleError`. Red cells under ``SMALL_CELL_PX`` across (coarser than ~0.8 µm per
pixel) are measured again on a copy upsampled twofold: at that size the smoothing and the opening
below erase single cells and keep the doublets, which read the scale a third too fine.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray
from scipy import ndimage as ndi

from core.images import ImageError
from trainer.errors import TrainerError
from trainer.wbc.flatfield import FlatField, flat_field, optical_density_ff

RBC_DIAMETER_UM = 7.8
# The second look's flat-field blocks: ~2.5 red cells (31 µm blocks failed on close-ups with a colour gradient).
SCALE_BLOCK_UM = 20.0
SMALL_CELL_PX = 10.0
SCALE_IMAGES = 20  # images of a folder that its `auto` scale looks at


class ScaleError(TrainerError):
    """The image does not show enough single red cells to estimate its pixel size."""


@dataclass(frozen=True)
class ScaleEstimate:
    pixel_size_um: float
    rbc_diameter_px: float
    cells: int  # single red cells measured
    spread: float  # interquartile range / median of their diameters


def _otsu(v: NDArray[np.float32]) -> float:
    hist, edges = np.histogram(v, bins=256)
    p = hist / max(hist.sum(), 1)
    centres = (edges[:-1] + edges[1:]) / 2
    w0 = np.cumsum(p)
    m = np.cumsum(p * centres)
    between = (m[-1] * w0 - m) ** 2 / np.maximum(w0 * (1 - w0), 1e-12)
    return float(centres[int(np.argmax(between))])


def single_cell_diameters(rgb: NDArray[Any], upsample: int = 1) -> NDArray[np.float64]:
    """Equivalent diameters (px of ``rgb``) of the parts of the stained material that look like one round
    cell, measured on a copy ``upsample`` times larger.

    The flat field needs blocks a few cells wide, which takes the scale being measured: a first look
    through two blocks along the shorter side (wide enough in a close-up, whose red cells may be wider
    than an eighth of the image) gives the red cells' size, and the cells are measured again through
    blocks of at least ``SCALE_BLOCK_UM`` at that size. An image in which the first look finds no red
    cell is measured through the default blocks."""
    if upsample > 1:
        rgb = np.stack([cv2.resize(np.asarray(c, np.float32), None, fx=upsample, fy=upsample,
                                   interpolation=cv2.INTER_CUBIC) for c in rgb]).clip(0, None)
    first = _red_cells(_diameters(rgb, flat_field(rgb, blocks=2)))
    ps = RBC_DIAMETER_UM / float(np.median(first)) if first.size else None
    ff = flat_field(rgb, pixel_size_um=ps, min_block_um=SCALE_BLOCK_UM) if ps else None
    return _diameters(rgb, ff) / upsample


def _diameters(rgb: NDArray[Any], ff: FlatField | None) -> NDArray[np.float64]:
    """Equivalent diameters (px) of the round single cells of ``rgb`` against the flat field ``ff``
    (None: :func:`flat_field`'s default blocks)."""
    od, ff = optical_density_ff(rgb, ff)
    m = od.mean(axis=0)
    m = ndi.gaussian_filter(m, 1.0)
    inside = m[ff.field]
    if inside.size == 0 or float(inside.max()) <= 0:
        return np.zeros(0)
    material = (m > max(_otsu(inside[inside > 0.01]) if (inside > 0.01).sum() > 100 else 0.05, 0.03)) & ff.field
    material = ndi.binary_fill_holes(material)
    material = cv2.morphologyEx(material.astype(np.uint8), cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    n, lab, stats, _ = cv2.connectedComponentsWithStats(material, connectivity=4)
    h, w = m.shape
    out = []
    for k in range(1, n):
        x, y, bw, bh, area = (int(v) for v in stats[k])
        if area < 30 or x == 0 or y == 0 or x + bw >= w or y + bh >= h:
            continue
        if max(bw, bh) > min(h, w) / 3:  # a blurred field's red cells run into one disc: not one cell
            continue
        if max(bw, bh) > 1.5 * min(bw, bh):
            continue
        cnt, _ = cv2.findContours((lab[y:y + bh, x:x + bw] == k).astype(np.uint8), cv2.RETR_EXTERNAL,
                                  cv2.CHAIN_APPROX_SIMPLE)
        hull = cv2.contourArea(cv2.convexHull(max(cnt, key=cv2.contourArea)))
        if hull <= 0 or area / hull < 0.88:
            continue
        out.append(2.0 * np.sqrt(area / np.pi))
    return np.asarray(out, np.float64)


def _red_cells(d: NDArray[np.float64]) -> NDArray[np.float64]:
    """The diameters among ``d`` that are red cells. Area-weighted median: red cells hold most of the
    area, so platelets and debris (many but small) cannot pull it down; then platelets, white cells
    and doublets are dropped."""
    if not d.size:
        return d
    order = np.sort(d)
    cum = np.cumsum(order**2)
    med = float(order[np.searchsorted(cum, cum[-1] / 2)])
    return d[(d > 0.7 * med) & (d < 1.4 * med)]


def _estimate(d: NDArray[np.float64], rbc_diameter_um: float) -> ScaleEstimate:
    med = float(np.median(d))
    q1, q3 = np.percentile(d, [25, 75])
    return ScaleEstimate(rbc_diameter_um / med, med, int(d.size), float((q3 - q1) / med))


def estimate_pixel_size(rgb: NDArray[Any], min_cells: int = 5, rbc_diameter_um: float = RBC_DIAMETER_UM
                        ) -> ScaleEstimate:
    """Sample-plane pixel size (µm) of a linear RGB image ``(3, H, W)`` from its single red cells."""
    d = _red_cells(single_cell_diameters(rgb))
    if d.size and np.median(d) < SMALL_CELL_PX:
        d = _red_cells(single_cell_diameters(rgb, 2))
    if d.size < min_cells:
        raise ScaleError(f"cannot estimate the pixel size: found {d.size} single red cells, need {min_cells}; "
                         "give --pixel-size-um explicitly (µm per pixel at the sample)")
    return _estimate(d, rbc_diameter_um)


def folder_pixel_size(images: list[NDArray[Any]], min_cells: int = 5, min_images: int = 5) -> tuple[float, int]:
    """Pixel size (µm) of linear RGB images of one slide or set, and how many images gave a single
    red cell. The median of the per-image estimates when at least ``min_images`` images show
    ``min_cells`` single red cells each; otherwise (close-ups at high magnification, a few whole red
    cells per image) one estimate from the single cells of all images pooled, so that no image's
    platelets stand in for its red cells. Refuses (:class:`ScaleError`) when the pool has fewer than
    ``min_cells``. Measured again on twofold copies when the red cells come out under ``SMALL_CELL_PX``."""
    ps, n = _folder_pixel_size([single_cell_diameters(rgb) for rgb in images], min_cells, min_images)
    if RBC_DIAMETER_UM / ps < SMALL_CELL_PX:
        ps, n = _folder_pixel_size([single_cell_diameters(rgb, 2) for rgb in images], min_cells, min_images)
    return ps, n


def _folder_pixel_size(per_image: list[NDArray[np.float64]], min_cells: int, min_images: int) -> tuple[float, int]:
    # The red cells' size band of all the images at once (area-weighted, so the red cells decide). An image
    # votes with its own red cells only when their median lies in that band: a close-up whose segmentation
    # yields only granules or noise would otherwise call those its red cells.
    pool = _red_cells(np.concatenate([np.zeros(0), *per_image]))
    if pool.size < min_cells:
        raise ScaleError(f"{len(per_image)} images show {pool.size} single red cells between them, need {min_cells}; "
                         "give --pixel-size-um explicitly (µm per pixel at the sample)")
    lo, hi = float(pool.min()), float(pool.max())
    own = [d for d in map(_red_cells, per_image) if d.size and lo <= float(np.median(d)) <= hi]
    est = [_estimate(d, RBC_DIAMETER_UM).pixel_size_um for d in own if d.size >= min_cells]
    if len(est) >= min_images:
        return float(np.median(est)), len(est)
    return _estimate(pool, RBC_DIAMETER_UM).pixel_size_um, len(own)


def sampled_pixel_size(paths: Sequence[Path], load: Callable[[Path], NDArray[Any]], n: int = SCALE_IMAGES
                       ) -> tuple[float, int]:
    """``auto`` for many images of one microscope and camera: :func:`folder_pixel_size` of every
    ``len(paths) // n``-th of them (``n`` to ``2n - 1`` images; all when fewer: a slide is calibrated once, from a
    few fields), each read by ``load`` as linear RGB. Files ``load`` cannot read (:class:`core.images.ImageError`)
    are passed over here; they are reported where the images are used."""
    images = []
    for p in paths[:: max(len(paths) // n, 1)]:
        try:
            images.append(load(p))
        except ImageError:
            continue
    return folder_pixel_size(images)
