"""Colour shift toward the target style and nucleus stability, on images with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from tests.trainer.style.conftest import cell_image
from trainer.style.measure import (
    before_after_strip,
    change_image,
    chromaticity,
    colour_shift,
    hue_deg,
    nucleus_stability,
)


def _cells(look: str, n: int = 4) -> np.ndarray:
    rng = np.random.default_rng(3)
    return np.stack([cell_image(look, rng, 48) for _ in range(n)])


def test_chromaticity_sums_to_one_and_hue_separates_red_and_blue() -> None:
    c = chromaticity(_cells("a"))
    assert c.sum() == pytest.approx(1.0)
    assert hue_deg(np.array([1.0, 0.0, 0.0])) == pytest.approx(0.0)
    assert hue_deg(np.array([0.0, 0.0, 1.0])) == pytest.approx(240.0)


def test_shift_is_zero_for_no_change_and_one_for_reaching_b() -> None:
    a, b = _cells("a"), _cells("b")
    assert colour_shift(a, a, b)["shift"] == pytest.approx(0.0)
    assert colour_shift(a, b, b)["shift"] == pytest.approx(1.0)
    half = colour_shift(a, 0.5 * (a + b), b)["shift"]
    assert 0.2 < half < 0.8
    assert colour_shift(a, a, b)["distance_ab"] > 0.01


def test_nucleus_stability_sees_a_moved_nucleus() -> None:
    a = _cells("a")
    same = nucleus_stability(a, a)
    assert same["nucleus_iou"] == 1.0 and same["flagged"] == 0.0 and same["cells"] == 4
    recoloured = nucleus_stability(a, _cells("b"))  # same geometry (same rng), other colours
    assert recoloured["nucleus_iou"] > 0.9
    moved = nucleus_stability(a, np.roll(a, 12, axis=3))
    assert moved["nucleus_iou"] < 0.5


def test_strip_has_one_row_per_image_set_and_change_is_grey_when_nothing_changed() -> None:
    a = _cells("a", 3)
    s = before_after_strip([a, a, a, change_image(a, a)], n=3, gap=2)
    assert s.shape == (4 * 48 + 6, 3 * 48 + 4, 3) and s.dtype == np.uint8
    assert np.all(s[3 * 50:3 * 50 + 48, :48] == 128)  # the change row: mid-grey
    np.testing.assert_array_equal(s[:48, :48], np.rint(np.moveaxis(a[0], 0, -1) * 255).astype(np.uint8))
    assert change_image(a, a + 0.1).max() == 1.0
