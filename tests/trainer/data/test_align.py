"""Fine SSIM alignment of crops and resampling through the registration map."""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from trainer.data.align import fine_align, ssim_by_offset, warp_window


def _texture(seed: int = 0, size: int = 160) -> np.ndarray:
    rng = np.random.default_rng(seed)
    g = 2000 + 900 * ndi.gaussian_filter(rng.standard_normal((size, size)), 1.5)
    return np.repeat(g[None], 3, axis=0).clip(0, 4095).astype(np.uint16)


def test_ssim_peaks_at_the_true_offset() -> None:
    img = _texture()[0].astype(np.float32) / 2000
    ref = img[50:82, 50:82]
    scores = ssim_by_offset(img[47:47 + 32 + 10, 46:46 + 32 + 10], ref, 5)
    dy, dx = np.unravel_index(np.argmax(scores), scores.shape)
    assert (dx - 5, dy - 5) == (-1, -2)  # moving starts 3 rows, 4 columns before the reference
    assert scores.max() > 0.99


def test_fine_align_finds_a_residual_subpixel_shift() -> None:
    unstained = _texture()
    stained = np.stack([ndi.shift(c.astype(float), (1.6, -2.3), order=3) for c in unstained]).astype(np.uint16)
    identity = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    fine = fine_align(stained, unstained, identity, 48, 48, 64, 5)
    assert abs(fine.dx - -2.3) < 0.35 and abs(fine.dy - 1.6) < 0.35
    assert fine.ssim > fine.ssim_zero


def test_warp_window_with_identity_is_a_crop() -> None:
    img = _texture()
    out = warp_window(img, np.array([[1.0, 0, 0], [0, 1.0, 0]]), 10, 20, 32)
    np.testing.assert_array_equal(out, img[:, 20:52, 10:42])
