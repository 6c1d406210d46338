"""Nucleus segmentation in Romanowsky-stained images and the nucleus-fidelity metric.

Romanowsky nuclei are dark purple: the azure (methylene-blue) dyes absorb red, the eosin–azure
complex bound to chromatin absorbs green too, so a nucleus is the only structure that is dense in
*both* the red and the green channel. Red cells and eosinophil granules (eosin: green and blue,
little red) and lymphocyte cytoplasm (azure only: red, little green) are not.

Steps, chosen to survive lab-to-lab variation in hue, saturation and white balance:

1. estimate the background ("white") per channel from the brightest pixels, divide by it — this
   removes the illumination colour and exposure;
2. optical density ``OD = -log10(I / I_white)`` per channel;
3. nucleus score ``min(OD_red, OD_green)``, set to 0 where blue OD exceeds ``max_blue_ratio`` times
   that score (yellow-brown debris and haemoglobin absorb blue far more than red and green);
4. Otsu threshold of the score over the *stained* pixels (total OD above a floor), never below an
   absolute OD floor, so a cell-free crop yields an empty mask instead of noise;
5. morphological opening with a disc of ``open_radius_px`` — this removes the thin, dark, nearly
   neutral rims that refraction draws around red cells (2 px at 20x) while keeping nuclear lobes —,
   hole filling and removal of components smaller than ``min_area``.

Checked on the simulator's MGG and Wright-Giemsa renderings (lab variation 0.3): segmented nuclear
area / true area has median 1.00 (10th-90th percentile 0.94-1.10) over 36 cells, and 0.1 spurious
components per 64x64 crop. A stricter purple test (blue < 0.9-1.1 × score) fails there: the
simulated nuclei are nearly neutral in OD, so colour alone cannot separate them from red-cell rims.

Images are channel-last ``(H, W, 3)`` RGB, float in [0, 1] or uint8.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage as ndi
from skimage.filters import threshold_otsu
from skimage.measure import label
from skimage.morphology import disk, remove_small_objects

from core import measures

Mask = NDArray[np.bool_]


@dataclass(frozen=True)
class NucleusParams:
    """Tuning of :func:`segment_nuclei`; the defaults suit 20x crops and phone-camera photographs alike."""

    background_percentile: float = 90.0  # pixels at or above this brightness define "white"
    stained_od: float = 0.08  # total OD above which a pixel counts as stained (Otsu population)
    min_score: float = 0.12  # absolute floor of the nucleus score threshold (OD)
    max_blue_ratio: float = 1.6  # colour test: OD_blue < this × min(OD_red, OD_green)
    smooth_px: float = 0.7  # Gaussian σ applied to the OD before the per-pixel tests
    open_radius_px: int = 2  # opening removes thin dark rims (red-cell edges) but keeps lobes
    min_area_frac: float = 0.002  # components smaller than this fraction of the image are dropped
    min_area_px: int = 4


def _as_float(rgb: NDArray[np.generic]) -> NDArray[np.float64]:
    if rgb.ndim != 3 or rgb.shape[-1] != 3:
        raise ValueError(f"expected an RGB image (H, W, 3), found shape {rgb.shape}")
    img = rgb.astype(np.float64)
    return img / 255.0 if rgb.dtype == np.uint8 else img


def optical_density(rgb: NDArray[np.generic], percentile: float = 90.0) -> NDArray[np.float64]:
    """Per-channel OD ``(H, W, 3)`` relative to the background white estimated from the image."""
    img = _as_float(rgb)
    lum = img.mean(axis=-1)
    bright = img[lum >= np.percentile(lum, percentile)]
    white = np.clip(np.median(bright, axis=0), 0.2, None)
    return np.asarray(np.moveaxis(measures.optical_density(np.moveaxis(img, -1, 0), white), 0, -1), np.float64)


def nucleus_score(rgb: NDArray[np.generic], params: NucleusParams | None = None) -> NDArray[np.float64]:
    """``min(OD_red, OD_green)`` where the colour test passes, else 0: ``(H, W)`` in OD units."""
    p = params or NucleusParams()
    od = ndi.gaussian_filter(optical_density(rgb, p.background_percentile), sigma=(p.smooth_px, p.smooth_px, 0))
    rg = np.minimum(od[..., 0], od[..., 1])
    return np.where(od[..., 2] < p.max_blue_ratio * rg, rg, 0.0)


def segment_nuclei(rgb: NDArray[np.generic], params: NucleusParams | None = None) -> Mask:
    """Boolean nucleus mask ``(H, W)`` of a stained RGB image ``(H, W, 3)``."""
    p = params or NucleusParams()
    score = nucleus_score(rgb, p)
    stained = score[score > p.stained_od]
    thresh = p.min_score
    if stained.size > 8 and np.ptp(stained) > 1e-6:
        thresh = max(thresh, float(threshold_otsu(stained)))
    mask = ndi.binary_opening(score > thresh, structure=disk(p.open_radius_px))
    mask = ndi.binary_fill_holes(mask)
    min_area = max(p.min_area_px, int(p.min_area_frac * mask.size))
    return np.asarray(remove_small_objects(mask, max_size=min_area - 1), dtype=bool)


def components(mask: Mask) -> tuple[NDArray[np.int64], int]:
    """8-connected components: label image and count."""
    labels, n = label(mask, connectivity=2, return_num=True)
    return labels, int(n)


def _unmatched(labels: NDArray[np.int64], n: int, other: Mask, min_cover: float) -> int:
    """Components of ``labels`` less than ``min_cover`` of whose pixels lie inside ``other``."""
    if n == 0:
        return 0
    area = np.bincount(labels.ravel(), minlength=n + 1)[1:]
    covered = np.bincount(labels[other].ravel(), minlength=n + 1)[1:]
    return int(np.sum(covered < min_cover * area))


def nucleus_fidelity(pred_rgb: NDArray[np.generic], target_rgb: NDArray[np.generic],
                     params: NucleusParams | None = None, min_cover: float = 0.3) -> dict[str, float]:
    """Compare the nuclei of a prediction and its target, both ``(H, W, 3)``.

    ``iou`` of the masks (1 when both are empty); ``n_target`` / ``n_pred`` components; ``added``:
    predicted components barely (< ``min_cover``) inside the target's nucleus — hallucinated lobes;
    ``removed``: target components barely covered by the prediction — erased lobes; ``flagged`` is 1
    when anything was added or removed.
    """
    mp, mt = segment_nuclei(pred_rgb, params), segment_nuclei(target_rgb, params)
    union = np.logical_or(mp, mt).sum()
    iou = 1.0 if union == 0 else float(np.logical_and(mp, mt).sum() / union)
    lp, n_pred = components(mp)
    lt, n_target = components(mt)
    added, removed = _unmatched(lp, n_pred, mt, min_cover), _unmatched(lt, n_target, mp, min_cover)
    return {"nucleus_iou": iou, "n_target": float(n_target), "n_pred": float(n_pred), "added": float(added),
            "removed": float(removed), "flagged": float(added > 0 or removed > 0)}
