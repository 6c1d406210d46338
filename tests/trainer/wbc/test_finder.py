"""Stained-image white-cell localisation: accuracy on simulated frames, robustness, limits in µm²."""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
import pytest

from sim.accuracy import PIXEL_UM, jitter_to_srgb8, match_cells
from trainer.data.config import WbcConfig
from trainer.data.synthetic import render_stained_field
from trainer.wbc.finder import detect, find_wbcs, optical_density, srgb_to_linear


def _score(frames: list[Any], convert: Any) -> tuple[int, int, int]:
    tp = fp = fn = 0
    for _, rgb, truth in frames:
        img, black = convert(rgb)
        a, b, c = match_cells(find_wbcs(img, PIXEL_UM, black_level=black), truth)
        tp, fp, fn = tp + a, fp + b, fn + c
    return tp, fp, fn


def test_finds_the_white_cells_of_both_stain_styles(stained_frames: list[Any]) -> None:
    tp, fp, fn = _score(stained_frames, lambda rgb: (rgb, 16))
    assert tp >= 12 and fn <= 1 and fp <= 1, (tp, fp, fn)  # rates on larger samples: bench/dataset_accuracy.py


def test_survives_lab_and_camera_colour_variation(stained_frames: list[Any]) -> None:
    """White balance, exposure, ±25° hue, x0.6–1.5 saturation and sRGB 8-bit encoding: same cells."""
    rng = np.random.default_rng(7)
    raw = _score(stained_frames, lambda rgb: (rgb, 16))
    jittered = _score(stained_frames, lambda rgb: (srgb_to_linear(jitter_to_srgb8(rgb, rng)), 0))
    assert jittered[0] >= raw[0] - 1 and jittered[1] <= raw[1] + 1, (raw, jittered)


@pytest.mark.parametrize("seed", [6, 7])
def test_platelets_and_precipitate_alone_are_not_cells(seed: int) -> None:
    """5x the usual platelets and stain precipitate, no white cell: nothing found."""
    rgb, truth = render_stained_field(256, seed, "mgg", 0.2, {"wbc_per_mm2": 0.0, "platelets_per_rbc": 0.3},
                                      precipitate_per_mm2=1000.0)
    assert truth == []
    assert find_wbcs(rgb, PIXEL_UM, black_level=16) == []


def test_limits_are_in_square_micrometres(stained_frames: list[Any]) -> None:
    """The same field at twice the pixel density (half the pixel size) gives the same cells."""
    _, rgb, _ = stained_frames[0]
    base = find_wbcs(rgb, PIXEL_UM, black_level=16)
    big = cv2.resize(np.moveaxis(rgb, 0, -1), None, fx=2, fy=2, interpolation=cv2.INTER_LINEAR)
    double = find_wbcs(np.moveaxis(big, -1, 0), PIXEL_UM / 2, black_level=16)
    assert len(double) == len(base)
    for a, b in zip(sorted(base, key=lambda c: c.x), sorted(double, key=lambda c: c.x), strict=True):
        assert abs(b.area_um2 - a.area_um2) / a.area_um2 < 0.2
        assert abs(b.x / 2 - a.x) < 1.0


def test_rejected_candidates_say_why(stained_frames: list[Any]) -> None:
    _, rgb, _ = stained_frames[1]
    strict = WbcConfig(min_area_um2=30.0, max_area_um2=35.0)
    reasons = {c.reason for c in detect(rgb, PIXEL_UM, strict, 16)}
    assert {"too_small", "too_large"} <= reasons


def test_optical_density_ignores_exposure_and_white_balance() -> None:
    rng = np.random.default_rng(0)
    img = rng.uniform(100, 4000, (3, 32, 32)).astype(np.float32)
    img[:, :8] = 4000
    scaled = img * np.array([0.5, 1.3, 0.9], np.float32)[:, None, None]
    np.testing.assert_allclose(optical_density(img), optical_density(scaled), atol=1e-4)


@pytest.mark.parametrize("shape", [(32, 32), (4, 32, 32)])
def test_rejects_non_rgb(shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match=r"expected an RGB image \(3, H, W\)"):
        find_wbcs(np.zeros(shape, np.uint16), PIXEL_UM)
