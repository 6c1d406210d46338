"""Measures computed on the device and on the host, one implementation each (numpy and OpenCV only).

* :func:`ssim` / :func:`ssim_map` — SSIM (Wang et al. 2004) with an 11-tap Gaussian window
  (σ = 1.5 px, truncated at 3.5 σ) and mirrored borders: :func:`ssim` with ``crop=True`` is
  ``skimage.metrics.structural_similarity(..., gaussian_weights=True, sigma=1.5,
  use_sample_covariance=False)``; ``crop=False`` averages the whole map (small patches keep their edges).
  The torch SSIM of the losses is :func:`trainer.losses.ssim`; both are checked against scikit-image.
* :func:`chi2_distance` — between two normalised histograms.
* :func:`percentile` — nearest rank, on plain Python numbers (latencies).
* :func:`median`, :func:`median_and_percentile` — ``np.median`` / ``np.percentile`` of float maps from
  exact order statistics (radix selection, :mod:`core.select`; several times faster than numpy's, the
  same values).
* :func:`optical_density` — OD of a linear image against its background white.
* :func:`pls_shift` — the shift of the brightfield plane against the oblique brightfield PLS planes
  (stage or sample slip between captures), used by the daemon's QC and by the dataset builder.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray

from core.select import order_statistics, select_rows

#: SSIM stabilisers for a data range of 1: (0.01 L)², (0.03 L)².
K1, K2 = 0.01, 0.03
#: Gaussian window: σ = 1.5 px, 11 taps (scikit-image truncates at 3.5 σ).
SSIM_SIGMA, SSIM_TAPS = 1.5, 11


def _blur(x: NDArray[np.float64]) -> NDArray[np.float64]:
    return np.asarray(cv2.GaussianBlur(x, (SSIM_TAPS, SSIM_TAPS), SSIM_SIGMA, borderType=cv2.BORDER_REFLECT),
                      np.float64)


def ssim_map(a: NDArray[np.generic], b: NDArray[np.generic], data_range: float = 1.0) -> NDArray[np.float64]:
    """Local SSIM ``(H, W)`` of two grey images ``(H, W)`` on the same scale (``data_range`` = max − min)."""
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError(f"ssim_map: expected two (H, W) images of one shape, found {a.shape} and {b.shape}")
    x, y = a.astype(np.float64), b.astype(np.float64)
    c1, c2 = (K1 * data_range) ** 2, (K2 * data_range) ** 2
    mx, my = _blur(x), _blur(y)
    vx = _blur(x * x) - mx * mx
    vy = _blur(y * y) - my * my
    cov = _blur(x * y) - mx * my
    return ((2 * mx * my + c1) * (2 * cov + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))


def ssim(a: NDArray[np.generic], b: NDArray[np.generic], data_range: float = 1.0, crop: bool = True) -> float:
    """Mean SSIM of two images ``(H, W)`` or channel-first ``(C, H, W)`` (the mean over channels).

    ``crop``: leave out the 5 px border the window does not fit in (scikit-image's mean); else the
    whole map, borders mirrored.
    """
    if a.shape != b.shape or a.ndim not in (2, 3):
        raise ValueError(f"ssim: expected two (H, W) or (C, H, W) images of one shape, found {a.shape} and {b.shape}")
    planes = zip(a.reshape(-1, *a.shape[-2:]), b.reshape(-1, *b.shape[-2:]), strict=True)
    pad = (SSIM_TAPS - 1) // 2 if crop else 0
    means = []
    for x, y in planes:
        s = ssim_map(x, y, data_range)
        means.append(s[pad:s.shape[0] - pad, pad:s.shape[1] - pad].mean())
    return float(np.mean(means))


def chi2_distance(h1: NDArray[np.floating], h2: NDArray[np.floating]) -> float:
    """½ Σ (h1 − h2)² / (h1 + h2) over non-empty bins of two normalised histograms (0 = same, 1 = disjoint)."""
    s = h1 + h2
    m = s > 0
    return float(0.5 * np.sum((h1[m] - h2[m]) ** 2 / s[m]))


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..100) of a non-empty sequence."""
    s = sorted(values)
    return s[max(0, min(len(s) - 1, math.ceil(q / 100 * len(s)) - 1))]


def median(x: NDArray[np.generic]) -> float:
    """``float(np.median(x))``, bit for bit: float32 by radix selection (:mod:`core.select`), other floats
    from one partition at the middle rank.

    ``np.median`` partitions at three ranks at once (the two middle ones and the last, for NaN), which
    numpy's selection does several times slower than one rank; one rank still costs ~0.55 ms for a 256²
    float32 map here, the radix selection ~0.15 ms. The lower middle value is the largest one below the
    middle rank. Float arrays only (else numpy's own).
    """
    flat = np.asarray(x).ravel()
    n = flat.size
    if n == 0 or flat.dtype.kind != "f":
        return float(np.median(flat))
    if np.isnan(flat).any():  # NaN sorts last: the median of an array with a NaN is NaN
        return float("nan")
    ranks = [n // 2] if n % 2 else [n // 2 - 1, n // 2]
    if flat.dtype == np.float32:
        middle = order_statistics(flat, ranks)
    else:
        part = np.partition(flat, n // 2)
        middle = np.array([part[n // 2]] if n % 2 else [part[:n // 2].max(), part[n // 2]], flat.dtype)
    return float(middle[0]) if n % 2 else float(np.mean(middle))  # np.median's own last step


def median_and_percentile(x: NDArray[np.floating], q: float) -> tuple[float, float]:
    """``(np.median(x), np.percentile(x, q))`` (linear interpolation) of a float array without NaN from exact
    order statistics (radix selection for float32, see :func:`median`): the median bit for bit, the
    percentile in float64 (numpy's own is within one float32 rounding of it)."""
    flat = np.asarray(x).ravel()
    n = flat.size
    if n == 0:
        raise ValueError("median_and_percentile: expected a non-empty array, found size 0")
    if not 0 <= q <= 100:
        raise ValueError(f"median_and_percentile: q = {q} is not a percentage in 0 .. 100")
    virtual = (n - 1) * q / 100.0
    lo = min(math.floor(virtual), n - 1)
    if flat.dtype != np.float32 or np.isnan(flat).any():
        part = np.partition(flat, lo)
        a = float(part[lo])
        b = float(part[lo + 1:].min()) if lo + 1 < n else a
        return median(flat), a + (b - a) * (virtual - lo)
    mid = [n // 2] if n % 2 else [n // 2 - 1, n // 2]
    v = order_statistics(flat, [*mid, lo, min(lo + 1, n - 1)])
    med = float(v[0]) if n % 2 else float(np.mean(v[:2]))
    a, b = float(v[-2]), float(v[-1])
    return med, a + (b - a) * (virtual - lo)


def optical_density(image: NDArray[np.generic], white: NDArray[np.generic]) -> NDArray[np.floating]:
    """OD ``−log10(image / white)`` of a linear channel-first image ``(C, H, W)`` against its
    background ``white``: one level per channel ``(C,)`` or a flat-field image ``(C, H, W)``; in
    [0, 3] (brighter than white is 0; transmission below 1e-3 is 3).
    float64 in, float64 out; anything else gives float32."""
    dtype = np.float64 if np.asarray(image).dtype == np.float64 else np.float32
    img: NDArray[np.floating] = np.asarray(image, dtype)
    w: NDArray[np.floating] = np.asarray(white, dtype)
    if w.ndim == 1:
        w = w.reshape(-1, 1, 1)
    ratio = img / w
    return np.asarray(-np.log10(np.clip(ratio, 1e-3, 1.0)), dtype)


@dataclass(frozen=True)
class PlsShift:
    """Shift of the brightfield plane against the oblique PLS planes, px (x = column, y = row)."""

    dx: float
    dy: float
    response: float  # phase-correlation peak (0..1); low = the images share little structure
    planes_used: int

    @property
    def magnitude(self) -> float:
        return float(math.hypot(self.dx, self.dy))


def _normalised_grey(plane: NDArray[np.generic], black_level: float) -> NDArray[np.float32]:
    """The mean over colours of ``plane`` ``(C, H, W)`` minus ``black_level``, over its median ``(H, W)``."""
    return _normalised_greys(np.asarray(plane)[None], black_level)[0]


def _normalised_greys(planes: NDArray[np.generic], black_level: float) -> NDArray[np.float32]:
    """:func:`_normalised_grey` of each plane of ``planes`` ``(K, C, H, W)``: ``(K, H, W)``.

    Camera planes (unsigned integers) take a counting path: the grey level is a non-decreasing
    function of the integer colour sum, so each median comes from the sums' middle ranks (radix
    selection, all planes in one histogram: :func:`core.select.select_rows`) and every pixel from its
    sum in three float passes (no float copy of the colours, no float median). Bit for bit what the float path
    gives (``np.asarray(p, np.float32).mean(axis=0) - black``, over ``np.median`` of that).
    """
    k, c = planes.shape[:2]
    if planes.dtype.kind != "u" or planes.ndim != 4 or planes[0].size == 0 or c > 65536:
        out = np.empty((k, *planes.shape[2:]), np.float32)
        for j, plane in enumerate(planes):
            g = np.asarray(plane, np.float32).mean(axis=0) - np.float32(black_level)
            out[j] = g / max(float(np.median(g)), 1e-6)
        return out
    sums = planes.sum(axis=1, dtype=np.uint32)  # (K, H, W), exact
    flat = sums.reshape(k, -1)
    n = flat.shape[1]
    middle = select_rows(flat, [n // 2] if n % 2 else [n // 2 - 1, n // 2])  # exact, radix selection
    upper, lower = middle[:, -1], middle[:, 0]

    def grey(v: NDArray[np.uint32]) -> NDArray[np.float32]:
        # what numpy's float32 mean computes for colours summing to v (float32 sum, then / C), minus the black
        g = np.true_divide(v, np.intp(c), out=np.empty(v.shape, np.float32), casting="unsafe")
        g -= np.float32(black_level)
        return g

    medians = grey(np.stack([lower, upper], axis=1)).mean(axis=1)  # np.median's own last step, per plane
    out = grey(sums)
    out /= np.maximum(medians, np.float32(1e-6))[:, None, None]
    return out


#: :func:`pls_shift` normalises the oblique planes in groups of at most this many bytes of camera data.
_GREY_CHUNK_BYTES = 16 << 20


@functools.lru_cache(maxsize=8)
def _hanning(shape: tuple[int, int]) -> NDArray[np.float32]:
    window = np.asarray(cv2.createHanningWindow(shape[::-1], cv2.CV_32F), np.float32)
    window.flags.writeable = False
    return window


def pls_shift(stack: NDArray[np.generic], brightfield: int, oblique: Sequence[int],
              black_level: float = 0.0, window: int | None = None) -> PlsShift:
    """Shift of plane ``brightfield`` of ``stack`` ``(N, C, H, W)`` against the ``oblique`` planes.

    The brightfield image is (up to LED weights) the sum of the oblique brightfield single-LED
    images of the same field: each oblique plane is normalised by its own median, the mean is the
    pseudo-brightfield, and phase correlation (Hanning window, subpixel) gives the shift.

    ``window``: measure on the central ``window`` x ``window`` pixels only (a slip moves the whole
    field, so a quarter of it shows it as well; the daemon's QC, a quarter of the work); ``None``
    or a window at least the field's size: the whole field.
    """
    if not oblique:
        raise ValueError("pls_shift: no oblique brightfield plane to compare the brightfield plane with")
    if window is not None:
        if window < 16:
            raise ValueError(f"pls_shift: window of {window} px is too small to measure a shift; expected >= 16")
        h, w = stack.shape[-2:]
        y0, x0 = max(0, (h - window) // 2), max(0, (w - window) // 2)
        stack = stack[..., y0:y0 + min(h, window), x0:x0 + min(w, window)]
    # the planes in groups of at most _GREY_CHUNK_BYTES of camera data (a large whole field is not copied at once)
    # (the brightfield plane in the first group: its median from the same histogram as the oblique planes')
    per_chunk = max(1, _GREY_CHUNK_BYTES // max(1, stack[brightfield].nbytes))
    planes = [brightfield, *oblique]
    pseudo = np.zeros(stack.shape[-2:], np.float32)
    real = pseudo
    for start in range(0, len(planes), per_chunk):
        greys = _normalised_greys(stack[planes[start:start + per_chunk]], black_level)
        if start == 0:
            real, greys = greys[0], greys[1:]
        for g in greys:
            pseudo += g  # np.mean(axis=0)'s order and rounding (0 + x is x)
    pseudo = np.true_divide(pseudo, np.intp(len(oblique)), out=pseudo, casting="unsafe")
    hann = _hanning(real.shape)
    (dx, dy), response = cv2.phaseCorrelate(pseudo - pseudo.mean(), real - real.mean(), hann)
    return PlsShift(float(dx), float(dy), float(response), len(oblique))
