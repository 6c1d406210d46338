"""Image metrics on known pairs."""

from __future__ import annotations

import numpy as np
import pytest

from trainer.metrics import METRICS, fourier_distance, image_metrics, lbp_chi2, lbp_histogram, mae, psnr, ssim


def test_identical_images_are_perfect() -> None:
    a = np.random.default_rng(0).random((3, 32, 32))
    m = image_metrics(a, a)
    assert m == {"ssim": 1.0, "psnr": 100.0, "mae": 0.0, "fourier": 0.0, "lbp_chi2": 0.0}
    assert set(m) == set(METRICS)


def test_known_values() -> None:
    a = np.full((3, 16, 16), 0.5)
    b = a + 0.1
    assert mae(a, b) == pytest.approx(0.1)
    assert psnr(a, b) == pytest.approx(20.0, abs=1e-6)  # 10·log10(1 / 0.01)
    assert fourier_distance(a, b) == pytest.approx(0.1 * 16 / 256, rel=1e-6)  # only the DC term differs
    assert ssim(a, b) < 1.0


def test_lbp_chi2_sees_invented_texture_that_mae_barely_sees() -> None:
    rng = np.random.default_rng(1)
    smooth = np.full((3, 32, 32), 0.6)
    speckled = np.clip(smooth + rng.normal(0, 0.02, smooth.shape), 0, 1)
    assert mae(smooth, speckled) < 0.02
    assert lbp_chi2(smooth, speckled) > 0.5  # flat → all one code; speckle spreads over many codes
    assert lbp_histogram(speckled).sum() == pytest.approx(1.0)
    assert 0.0 <= lbp_chi2(speckled, smooth) <= 1.0
