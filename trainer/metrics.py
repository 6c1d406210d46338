"""Image-quality metrics on numpy arrays: one stained RGB image ``(3, H, W)`` float in [0, 1] per call.

SSIM (:func:`core.measures.ssim`, Gaussian window σ = 1.5 as in :func:`trainer.losses.ssim`),
PSNR (dB), MAE, the Fourier distance (L1 between orthonormal |FFT|, the seed's eq. 2.10) and seed
003's hallucination measure: the chi-squared distance between the local-binary-pattern histograms
of the grey images.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from skimage.color import rgb2gray
from skimage.feature import local_binary_pattern
from skimage.metrics import peak_signal_noise_ratio

from core import measures

Image = NDArray[np.floating]


def mae(pred: Image, target: Image) -> float:
    return float(np.abs(pred.astype(np.float64) - target).mean())


def psnr(pred: Image, target: Image) -> float:
    """PSNR in dB for data range 1 (capped at 100 dB for identical images)."""
    if np.array_equal(pred, target):
        return 100.0
    return float(peak_signal_noise_ratio(target.astype(np.float64), pred.astype(np.float64), data_range=1.0))


def ssim(pred: Image, target: Image) -> float:
    """SSIM of two RGB images ``(3, H, W)`` in [0, 1]: :func:`core.measures.ssim` (scikit-image's mean)."""
    return measures.ssim(pred, target, data_range=1.0)


def fourier_distance(pred: Image, target: Image) -> float:
    fp = np.abs(np.fft.fft2(pred.astype(np.float64), norm="ortho"))
    ft = np.abs(np.fft.fft2(target.astype(np.float64), norm="ortho"))
    return float(np.abs(fp - ft).mean())


def lbp_histogram(rgb: Image, points: int = 8, radius: float = 1.0) -> NDArray[np.float64]:
    """Normalised histogram of the 2**points LBP codes of the grey image of ``rgb`` ``(3, H, W)``."""
    grey = np.round(rgb2gray(np.moveaxis(np.clip(rgb, 0, 1), 0, -1)) * 255).astype(np.uint8)
    codes = local_binary_pattern(grey, points, radius, method="default")
    hist = np.bincount(codes.astype(np.int64).ravel(), minlength=2**points).astype(np.float64)
    return hist / hist.sum()


def lbp_chi2(pred: Image, target: Image, points: int = 8, radius: float = 1.0) -> float:
    """Chi-squared distance ``½ Σ (p - t)² / (p + t)`` between LBP histograms (0 = same texture, max 1)."""
    return measures.chi2_distance(lbp_histogram(pred, points, radius), lbp_histogram(target, points, radius))


#: Per-sample metrics computed by :func:`image_metrics`; ``higher`` tells the direction of "better".
METRICS: dict[str, bool] = {"ssim": True, "psnr": True, "mae": False, "fourier": False, "lbp_chi2": False}


def image_metrics(pred: Image, target: Image) -> dict[str, float]:
    """All of :data:`METRICS` for one prediction / target pair ``(3, H, W)``."""
    return {"ssim": ssim(pred, target), "psnr": psnr(pred, target), "mae": mae(pred, target),
            "fourier": fourier_distance(pred, target), "lbp_chi2": lbp_chi2(pred, target)}
