"""Nuclear-stain density by per-image colour deconvolution (``wbc.method = "stain"``).

Romanowsky stains (Giemsa, Wright, May-Grünwald, Leishman) colour red cells pink-orange (eosin)
and nuclei blue-purple (azure / methylene blue); the hues, their strength and the camera's white
balance differ from lab to lab. Per image:

1. optical density against the image's own flat field (:mod:`trainer.wbc.flatfield`), so tint,
   exposure and vignetting drop out and the field stop is masked;
2. two stain vectors estimated from the image itself (:func:`stain_vectors`): the median OD
   direction of the stained material (red cells) and the mean direction of its densest pixels
   (nuclei). Macenko's plane-and-extreme-angles estimate was tried first: on the pig set, where
   red cells and nuclei are both purple, its extremes were noise, not nuclei;
3. the OD is unmixed into the two stains (least squares); the nuclear-stain density, smoothed, is
   thresholded at ``relative`` times its own 99th percentile over the stained material (white
   cells cover well under 1 % of it, so that percentile is the darkest red-cell or platelet
   material, and a pale or a strong stain moves it with the nuclei).
"""

from __future__ import annotations

import logging
import math
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage as ndi

from trainer.wbc.flatfield import FlatField, optical_density_ff

log = logging.getLogger(__name__)

#: Summed OD above this counts as stained material (glass is ~0 after the flat field).
MATERIAL_OD = 0.06


class StainMaps(NamedTuple):
    nuclear: NDArray[np.float32]  # (H, W) nuclear-stain density, unsmoothed
    red: NDArray[np.float32]  # (H, W) red-cell stain density
    vectors: NDArray[np.float32]  # (2, 3) unit OD vectors: red-cell stain, nuclear stain
    level: float  # median red-cell stain density of the material
    field: FlatField


def stain_vectors(od: NDArray[np.float32], dense_pct: float = 99.7) -> tuple[NDArray[np.float32], float]:
    """Unit OD vectors ``(2, 3)`` (red-cell stain, nuclear stain) of ``od`` ``(3, H, W)``, and the
    fraction of pixels that were stained material.

    The red-cell stain is the median direction of the material's OD vectors (red cells are most of
    it); the nuclear stain is the mean direction of its densest pixels (above the ``dense_pct``
    percentile of summed OD: nuclei, where the field has any). When the two are nearly parallel
    (no nucleus, or a stain that does not tell them apart) a generic azure direction is used.
    """
    flat = od.reshape(3, -1)
    total = flat.sum(axis=0)
    material = flat[:, total > MATERIAL_OD]
    frac = material.shape[1] / max(flat.shape[1], 1)
    default = np.array([[0.09, 0.80, 0.59], [0.65, 0.70, 0.29]], np.float32)  # eosin-like, azure-like
    default /= np.linalg.norm(default, axis=1, keepdims=True)
    if material.shape[1] < 200:
        return default, frac
    unit = material / np.linalg.norm(material, axis=0, keepdims=True)
    red = np.median(unit, axis=1)
    red /= np.linalg.norm(red)
    msum = material.sum(axis=0)
    nuc = material[:, msum >= np.percentile(msum, dense_pct)].mean(axis=1)
    nuc /= np.linalg.norm(nuc)
    if float(red @ nuc) > math.cos(math.radians(3.0)):
        nuc = default[1]
    return np.stack([red, nuc]).astype(np.float32), frac


def stain_maps(rgb: NDArray[Any], pixel_size_um: float | None = None) -> StainMaps:
    """Stain densities of a linear RGB image ``(3, H, W)`` against its own flat field (blocks of at least
    :data:`trainer.wbc.flatfield.FLAT_BLOCK_UM` when ``pixel_size_um`` is given)."""
    od, ff = optical_density_ff(rgb, pixel_size_um=pixel_size_um)
    vec, _ = stain_vectors(od)
    conc = np.linalg.pinv(vec.T.astype(np.float64)) @ od.reshape(3, -1)  # (2, N)
    red = conc[0].reshape(od.shape[1:]).astype(np.float32)
    nuc = conc[1].reshape(od.shape[1:]).astype(np.float32)
    material = od.sum(axis=0) > MATERIAL_OD
    level = float(np.median(red[material])) if material.any() else 0.0
    log.debug("stains red %s nuclear %s level %.3f", vec[0], vec[1], level)
    return StainMaps(nuc, red, vec, max(level, 1e-3), ff)


def stain_nucleus_mask(rgb: NDArray[Any], pixel_size_um: float, smooth_um: float, relative: float,
                       od_min: float) -> tuple[NDArray[np.bool_], NDArray[np.float32], NDArray[np.float32], float]:
    """``(mask, smoothed nuclear density, raw nuclear density, material level)``; the level is the
    99th percentile of the smoothed nuclear density over the stained material."""
    maps = stain_maps(rgb, pixel_size_um)
    raw = np.maximum(maps.nuclear, 0.0)
    sm = (ndi.gaussian_filter(raw, smooth_um / pixel_size_um) if smooth_um > 0 else raw).astype(np.float32)
    material = (maps.red + maps.nuclear > MATERIAL_OD) & maps.field.field
    level = float(np.percentile(sm[material], 99)) if material.sum() > 100 else od_min
    mask = (sm > max(od_min, relative * level)) & maps.field.field
    return mask, sm, raw, level
