"""White-cell detection on the unstained PLS stack (there is no stain on the device).

White cells scatter far more light to **high angles** than red cells do: their nuclei and granules
are dense, high-index structures well below a micrometre, while a dried red cell is a smooth disc
whose scattering stays near the objective's NA. The default detector therefore works on the
high-angle darkfield scattering energy — the exposure-normalised sum of the darkfield images whose
LED sits beyond ``min_angle_deg``, in the ``colours`` given (blue by default: small particles scatter
blue most, and haemoglobin makes red cells absorb it) — and on its share of the whole darkfield
energy:

1. ``energy = Σ (frame − black) / exposure_ms`` over the selected planes and colours, divided by
   its field median (robust to illumination and exposure drift);
2. a difference of Gaussians at cell scale (``blob_um`` minus ``background_um``) turns each white
   cell into one peak; peaks at least ``min_distance_um`` apart above ``threshold`` are candidates;
3. per candidate, the region above half its peak height gives the size (equivalent diameter in
   ``[min_diameter_um, max_diameter_um]``) and shape (solidity ≥ ``min_solidity``);
4. the high-angle share of the darkfield energy at the peak must reach ``min_high_angle_share``
   (smudge cells and debris scatter mostly at low angles).

Everything here is a pure function of arrays. :class:`Detection` centres are ``(x, y)`` px, boxes
``(x0, y0, x1, y1)`` px with exclusive ends, clipped to the field.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray

from core import measures
from edge.device.config import DetectorConfig


@dataclass(frozen=True)
class Detection:
    """One white-cell candidate: centre (x, y) px, box (x0, y0, x1, y1) px, score, size in µm."""

    center_px: tuple[float, float]
    box_px: tuple[int, int, int, int]
    score: float
    diameter_um: float
    solidity: float
    high_angle_share: float


def darkfield_energy(stack: NDArray[np.uint16], planes: Sequence[int], exposure_ms: Sequence[float],
                     black_level: float) -> NDArray[np.float32]:
    """Exposure-normalised scattering energy ``(H, W)`` (ADU/ms summed over ``planes`` and colours).

    ``stack`` is ``(N, C, H, W)``; ``exposure_ms[i]`` is plane ``i``'s exposure times its gain.
    """
    if not planes:
        raise ValueError("no darkfield plane selected; the default detector needs darkfield images")
    h, w = stack.shape[-2:]
    acc = np.zeros((h, w), np.float32)
    for i in planes:
        plane = stack[i].astype(np.float32).sum(axis=0)
        plane -= np.float32(black_level * stack.shape[1])
        acc += plane * np.float32(1.0 / exposure_ms[i])
    return acc


def darkfield_energies(stack: NDArray[np.uint16], colours: Sequence[int], high: Sequence[int], total: Sequence[int],
                       exposure_ms: Sequence[float], black_level: float) -> tuple[NDArray[np.float32],
                                                                                 NDArray[np.float32]]:
    """:func:`darkfield_energy` of ``stack[:, colours]`` over ``high`` and over ``total`` planes in one pass: each
    plane read once and only the ``colours`` asked for (no copy of the stack).

    With one colour (the detector's default, blue) each plane is added as ``raw · (1/t) − black · (1/t)`` in one
    OpenCV ``addWeighted`` call (one pass instead of four; ``high`` planes into one sum, the others into another,
    the total their sum): equal to :func:`darkfield_energy` within float32 rounding (relative 1e-6 of the map's
    largest value); with several colours bit for bit."""
    if not high or not total:
        raise ValueError("no darkfield plane selected; the default detector needs darkfield images")
    if not set(high) <= set(total):
        raise ValueError(f"high-angle planes {sorted(set(high) - set(total))} are not among the total's planes")
    h, w = stack.shape[-2:]
    acc_high, acc_total = np.zeros((h, w), np.float32), np.zeros((h, w), np.float32)
    high_set = set(high)
    lo, n = min(colours), len(colours)
    if n == 1:
        acc_rest = np.zeros((h, w), np.float32)
        for i in total:
            scale = 1.0 / exposure_ms[i]
            acc = acc_high if i in high_set else acc_rest
            cv2.addWeighted(stack[i, lo], scale, acc, 1.0, -black_level * scale, dst=acc, dtype=cv2.CV_32F)
        np.add(acc_high, acc_rest, out=acc_total)
        return acc_high, acc_total
    contiguous = list(colours) == list(range(lo, lo + n))
    contrib = np.empty((h, w), np.float32)
    black = np.float32(black_level * n)
    for i in total:  # each sum in its own plane order, as darkfield_energy adds them
        raw = stack[i, lo:lo + n] if contiguous else stack[i, list(colours)]
        np.subtract(raw.astype(np.float32).sum(axis=0), black, out=contrib)
        contrib *= np.float32(1.0 / exposure_ms[i])
        acc_total += contrib
        if i in high_set:
            acc_high += contrib
    return acc_high, acc_total


def maximum_filter(image: NDArray[np.float32], size: int) -> NDArray[np.float32]:
    """The maximum over a ``size`` x ``size`` square around each pixel (odd ``size``; edges replicated).

    The same as ``scipy.ndimage.maximum_filter(image, size, mode="nearest")``, without scipy on the device.
    """
    kernel = np.ones((size, size), np.uint8)
    return np.asarray(cv2.dilate(image, kernel, borderType=cv2.BORDER_REPLICATE), np.float32)


def gaussian_blur(image: NDArray[np.float32], sigma: float) -> NDArray[np.float32]:
    """``cv2.GaussianBlur(image, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)`` of a float32 ``(H, W)`` image.

    A wide kernel (6 x taps > H + W: the background of a small field) is applied as two small matrix
    products ``Gy @ image @ Gx.T`` with the reflection folded into the matrices — a few times faster
    than the separable filter there, equal to float32 rounding (≤ 1e-6 of the image's range).
    """
    h, w = image.shape
    taps = _taps(sigma)
    if 6 * taps <= h + w:
        return np.asarray(cv2.GaussianBlur(image, (0, 0), sigma, borderType=cv2.BORDER_REFLECT), np.float32)
    rows, cols = _blur_matrix(h, sigma), _blur_matrix(w, sigma)
    # OpenCV's gemm: single-threaded and BLAS-free here, so it does not fight the inference thread for cores
    none = np.empty((0, 0), np.float32)  # no third operand (beta = 0)
    tmp = cv2.gemm(rows, image, 1.0, none, 0.0)
    return np.asarray(cv2.gemm(tmp, cols, 1.0, none, 0.0, flags=cv2.GEMM_2_T), np.float32)


#: The difference of Gaussians runs on the 2 x 2-binned image when its narrow Gaussian is at least this
#: wide (px at full resolution): the cell-scale blob (σ ≈ 12 px) hardly changes between neighbouring pixels.
DOG_BINNED_MIN_SIGMA_PX = 6.0


def difference_of_gaussians(image: NDArray[np.float32], sigma: float, sigma_background: float) -> NDArray[np.float32]:
    """``gaussian_blur(image, sigma) - gaussian_blur(image, sigma_background)`` of a float32 ``(H, W)`` image.

    With ``sigma`` ≥ :data:`DOG_BINNED_MIN_SIGMA_PX` and an even-sized image it is computed on the 2 x 2-binned
    image (Gaussians of half the width) and brought back to full size by bilinear interpolation: a quarter of
    the pixels and half the taps, within ~1 % of the blob's height of the full-resolution result (the binning
    and the interpolation together add ~0.5 px² of variance to a σ² ≥ 36 px² Gaussian). Peaks stay seeds for
    :func:`detect_cells`, whose centres come from the full-resolution region around them.
    """
    h, w = image.shape
    if sigma < DOG_BINNED_MIN_SIGMA_PX or h % 2 or w % 2 or min(h, w) < 16:
        return gaussian_blur(image, sigma) - gaussian_blur(image, sigma_background)
    small = np.asarray(cv2.resize(image, (w // 2, h // 2), interpolation=cv2.INTER_AREA), np.float32)
    dog = gaussian_blur(small, sigma / 2) - gaussian_blur(small, sigma_background / 2)
    return np.asarray(cv2.resize(dog, (w, h), interpolation=cv2.INTER_LINEAR), np.float32)


def _taps(sigma: float) -> int:
    """OpenCV's kernel size for a float image and ``ksize = (0, 0)``: ±4 sigma, odd."""
    return round(sigma * 8 + 1) | 1


@functools.lru_cache(maxsize=16)
def _blur_matrix(n: int, sigma: float) -> NDArray[np.float32]:
    """The ``(n, n)`` matrix of a 1-D Gaussian blur with ``BORDER_REFLECT`` (``fedcba|abcdef``) borders."""
    taps = _taps(sigma)
    r = taps // 2
    kernel = cv2.getGaussianKernel(taps, sigma, cv2.CV_64F).ravel()
    src = _reflect(np.arange(n)[:, None] + np.arange(-r, r + 1)[None, :], n)
    m = np.zeros((n, n), np.float64)
    np.add.at(m, (np.repeat(np.arange(n), taps), src.ravel()), np.tile(kernel, n))
    m32 = m.astype(np.float32)
    m32.flags.writeable = False
    return m32


def detect_cells(high: NDArray[np.float32], total: NDArray[np.float32], pixel_um: float,
                 config: DetectorConfig) -> list[Detection]:
    """Detections from the high-angle and the total darkfield energy ``(H, W)`` (pixels of ``pixel_um``)."""
    median = measures.median(high)
    if not math.isfinite(median) or median <= 0:
        return []
    rel = high / np.float32(median)
    border = cv2.BORDER_REFLECT
    blob = difference_of_gaussians(rel, config.blob_um / pixel_um, config.background_um / pixel_um)
    size = max(3, round(config.min_distance_um / pixel_um) | 1)
    peaks = (blob == maximum_filter(blob, size)) & (blob > config.threshold)
    smooth = np.asarray(cv2.GaussianBlur(rel, (0, 0), max(0.5, config.region_um / pixel_um), borderType=border),
                        np.float32)
    level0 = measures.median(smooth)
    ys, xs = np.nonzero(peaks)
    share = high_angle_share(high, total, ys, xs, config.region_um / pixel_um)
    out: list[Detection] = []
    for y, x, hs in zip(ys.tolist(), xs.tolist(), share.tolist(), strict=True):
        det = _measure(smooth, level0, hs, blob, x, y, pixel_um, config)
        if det is not None:
            out.append(det)
    out.sort(key=lambda d: (d.center_px[1], d.center_px[0]))
    return out


#: Above this many peaks :func:`high_angle_share` blurs the whole maps instead of summing around each peak.
SHARE_AT_PEAKS_MAX = 64


def high_angle_share(high: NDArray[np.float32], total: NDArray[np.float32], ys: NDArray[np.intp],
                     xs: NDArray[np.intp], sigma: float) -> NDArray[np.float32]:
    """The share ``blur(high) / max(blur(total), 1e-6)`` at the pixels ``(ys, xs)`` (Gaussian ``sigma`` px,
    ``BORDER_REFLECT``), ``(K,)``.

    Only the peaks need it: with few peaks each blurred value is the kernel-weighted sum of the window around
    it (float64), equal to the whole-map blur (OpenCV, float32) within float32 rounding.
    """
    if len(ys) > SHARE_AT_PEAKS_MAX:
        border = cv2.BORDER_REFLECT
        share = np.asarray(cv2.GaussianBlur(high, (0, 0), sigma, borderType=border)
                           / np.maximum(cv2.GaussianBlur(total, (0, 0), sigma, borderType=border), 1e-6), np.float32)
        return np.asarray(share[ys, xs], np.float32)
    taps = _taps(sigma)
    r = taps // 2
    kernel = cv2.getGaussianKernel(taps, sigma, cv2.CV_64F).ravel()
    (h, w), offsets = high.shape, np.arange(-r, r + 1)
    out = np.empty(len(ys), np.float32)
    for k, (y, x) in enumerate(zip(ys.tolist(), xs.tolist(), strict=True)):
        if r <= y < h - r and r <= x < w - r:
            both = np.stack((high[y - r:y + r + 1, x - r:x + r + 1], total[y - r:y + r + 1, x - r:x + r + 1]))
        else:  # near the border: the mirrored window
            window = np.ix_(_reflect(y + offsets, h), _reflect(x + offsets, w))
            both = np.stack((high[window], total[window]))
        hi, tot = kernel @ both.astype(np.float64) @ kernel
        out[k] = np.float32(hi) / max(np.float32(tot), np.float32(1e-6))
    return out


def _reflect(index: NDArray[np.intp], n: int) -> NDArray[np.intp]:
    """Indices outside ``0 .. n-1`` mirrored as ``BORDER_REFLECT`` does (``fedcba|abcdef``)."""
    index = np.mod(index, 2 * n)
    return np.where(index >= n, 2 * n - 1 - index, index)


def _measure(smooth: NDArray[np.float32], level0: float, hs: float, blob: NDArray[np.float32],
             x: int, y: int, pixel_um: float, config: DetectorConfig) -> Detection | None:
    """Size, shape and high-angle share ``hs`` of the half-height region around peak (x, y)."""
    if hs < config.min_high_angle_share:
        return None
    r = math.ceil(config.max_diameter_um / pixel_um)
    h, w = smooth.shape
    y0, y1, x0, x1 = max(0, y - r), min(h, y + r + 1), max(0, x - r), min(w, x + r + 1)
    win = smooth[y0:y1, x0:x1]
    mask = (win > level0 + 0.5 * (float(smooth[y, x]) - level0)).astype(np.uint8)
    if not mask[y - y0, x - x0]:
        return None
    # the region's area, bounding box and centre (its pixels' mean, exact sums in float64) from OpenCV's stats
    _, labels, stats, centroids = cv2.connectedComponentsWithStats(mask, connectivity=8)
    label = labels[y - y0, x - x0]
    left, top, width, height, area = (int(v) for v in stats[label])
    diameter = 2.0 * math.sqrt(float(area) / math.pi) * pixel_um
    if not config.min_diameter_um <= diameter <= config.max_diameter_um:
        return None
    solidity = _solidity(labels[top:top + height, left:left + width] == label)
    if solidity < config.min_solidity:
        return None
    cx, cy = float(centroids[label][0]) + x0, float(centroids[label][1]) + y0
    m = config.box_margin_um / pixel_um
    box = (max(0, int(left + x0 - m)), max(0, int(top + y0 - m)),
           min(w, math.ceil(left + width + x0 + m)), min(h, math.ceil(top + height + y0 + m)))
    return Detection((cx, cy), box, float(blob[y, x]), diameter, solidity, hs)


def _solidity(region: NDArray[np.bool_]) -> float:
    contours, _ = cv2.findContours(region.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    if not contours:
        return 0.0
    hull = cv2.convexHull(max(contours, key=cv2.contourArea))
    hull_area = float(cv2.contourArea(hull))
    # contourArea on pixel centres underestimates small regions: compare like with like
    return min(1.0, float(cv2.contourArea(max(contours, key=cv2.contourArea))) / hull_area) if hull_area else 0.0


@dataclass(frozen=True)
class MatchResult:
    """Detections matched to truth centres (greedy, nearest first, within a radius)."""

    true_positives: int
    false_positives: int
    false_negatives: int

    @property
    def recall(self) -> float:
        n = self.true_positives + self.false_negatives
        return self.true_positives / n if n else 1.0

    @property
    def precision(self) -> float:
        n = self.true_positives + self.false_positives
        return self.true_positives / n if n else 1.0


def match_pairs(found: Sequence[tuple[float, float]], truth: Sequence[tuple[float, float]],
                radius_px: float) -> dict[int, int]:
    """Greedy one-to-one matching of detected to true centres (px) within ``radius_px``, closest
    pairs first: detection index → truth index."""
    pairs = sorted(
        (math.dist(f, t), i, j) for i, f in enumerate(found) for j, t in enumerate(truth)
        if math.dist(f, t) <= radius_px
    )
    out: dict[int, int] = {}
    used: set[int] = set()
    for _, i, j in pairs:
        if i not in out and j not in used:
            out[i] = j
            used.add(j)
    return out


def match_detections(found: Sequence[tuple[float, float]], truth: Sequence[tuple[float, float]],
                     radius_px: float) -> MatchResult:
    """Counts of :func:`match_pairs`."""
    tp = len(match_pairs(found, truth, radius_px))
    return MatchResult(tp, len(found) - tp, len(truth) - tp)
