from __future__ import annotations

import numpy as np
import pytest
from skimage.metrics import structural_similarity

from core.measures import chi2_distance, optical_density, percentile, pls_shift, ssim, ssim_map


def _pair(shape: tuple[int, ...], seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    a = rng.random(shape)
    b = np.clip(a + rng.normal(0, 0.15, shape), 0, 1)
    return a, b


@pytest.mark.parametrize("shape", [(48, 40), (3, 32, 32), (5, 64, 64)])
def test_ssim_is_scikit_image_ssim(shape: tuple[int, ...]) -> None:
    a, b = _pair(shape, len(shape))
    ref = structural_similarity(a, b, data_range=1.0, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                channel_axis=0 if len(shape) == 3 else None)
    assert ssim(a, b) == pytest.approx(ref, abs=1e-6)


def test_ssim_map_is_scikit_image_full_map() -> None:
    a, b = _pair((40, 44), 7)
    _, ref = structural_similarity(a, b, data_range=2.0, gaussian_weights=True, sigma=1.5,
                                   use_sample_covariance=False, full=True)
    np.testing.assert_allclose(ssim_map(a, b, data_range=2.0), ref, atol=1e-6)
    assert ssim(a, b, data_range=2.0, crop=False) == pytest.approx(float(ref.mean()), abs=1e-6)


def test_ssim_refuses_mismatched_shapes() -> None:
    with pytest.raises(ValueError, match=r"found \(4, 4\) and \(4, 5\)"):
        ssim(np.zeros((4, 4)), np.zeros((4, 5)))


def test_chi2_percentile_and_optical_density() -> None:
    assert chi2_distance(np.array([0.5, 0.5, 0.0]), np.array([0.5, 0.5, 0.0])) == 0.0
    assert chi2_distance(np.array([1.0, 0.0]), np.array([0.0, 1.0])) == 1.0
    assert percentile([5.0, 1.0, 3.0, 2.0, 4.0], 50) == 3.0 and percentile([1.0, 2.0], 100) == 2.0
    od = optical_density(np.array([[[100.0, 10.0, 200.0, 0.0]]]), np.array([100.0]))
    np.testing.assert_allclose(od[0, 0], [0.0, 1.0, 0.0, 3.0], atol=1e-6)


def test_pls_shift_finds_a_slipped_brightfield_plane() -> None:
    rng = np.random.default_rng(3)
    import cv2

    scene = cv2.GaussianBlur(rng.random((96, 96)).astype(np.float32), (0, 0), 2.0) + 1.0
    slipped = np.roll(scene, (2, -3), axis=(0, 1))  # rows +2, columns −3
    stack = np.stack([np.stack([slipped] * 3), np.stack([scene] * 3), np.stack([scene * 0.8] * 3)]) * 1000
    shift = pls_shift(stack, 0, [1, 2])
    assert (round(shift.dx), round(shift.dy)) == (-3, 2) and shift.planes_used == 2
    assert shift.magnitude == pytest.approx(np.hypot(shift.dx, shift.dy))
