"""Brightfield vs oblique-PLS misalignment by phase correlation."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from trainer.data.plscheck import oblique_planes, pls_shift

PLANES = [{"plane": 0, "channel": "bf", "led": None, "exposure_class": "normal", "na_x": None, "na_y": None}] + [
    {"plane": i, "channel": f"led{i}", "led": i, "exposure_class": "normal",
     "na_x": 0.1 * np.cos(i), "na_y": 0.1 * np.sin(i)} for i in range(1, 5)] + [
    {"plane": 5, "channel": "led9:low", "led": 9, "exposure_class": "low", "na_x": 0.6, "na_y": 0.0}]


def _stack(shift: tuple[float, float], seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = 2000 + 800 * ndi.gaussian_filter(rng.standard_normal((128, 128)), 2.0)
    planes = [ndi.shift(base, (shift[1], shift[0]), mode="wrap")]
    planes += [base * g + rng.normal(0, 5, base.shape) for g in (0.6, 0.8, 1.1, 0.9)]
    planes += [rng.uniform(16, 100, base.shape)]
    return np.repeat(np.stack(planes)[:, None], 3, axis=1).clip(0, 4095).astype(np.uint16)


@pytest.mark.parametrize("shift", [(2.0, 0.0), (-1.4, 1.4), (0.0, -3.5)])
def test_measures_the_brightfield_slip(shift: tuple[float, float]) -> None:
    s = pls_shift(_stack(shift), PLANES, 0.4, 16)
    assert s is not None and s.planes_used == 4
    assert abs(s.dx - shift[0]) < 0.2 and abs(s.dy - shift[1]) < 0.2


def test_aligned_stacks_do_not_alarm() -> None:
    worst = max(pls_shift(_stack((0.0, 0.0), seed), PLANES, 0.4, 16).magnitude for seed in range(5))  # type: ignore[union-attr]
    assert worst < 0.1


def test_needs_brightfield_and_oblique_planes() -> None:
    assert oblique_planes(PLANES, 0.4) == [1, 2, 3, 4]
    assert pls_shift(_stack((0, 0))[1:], PLANES[1:], 0.4) is None
    assert pls_shift(_stack((0, 0)), PLANES, 0.05) is None  # every LED outside a 0.05 NA objective
