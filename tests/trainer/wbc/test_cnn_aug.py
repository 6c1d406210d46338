"""Lab and camera jitter of linear RGB photographs (before the flat field)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.support.drawn_smear import drawn_smear
from trainer.wbc.cnn_aug import camera_jitter, lab_jitter, lamp_jitter, optics_jitter, stain_jitter
from trainer.wbc.density import net_input
from trainer.wbc.finder import srgb_to_linear

RGB = srgb_to_linear(drawn_smear(seed=2))


@pytest.mark.parametrize("fn", [stain_jitter, lamp_jitter, camera_jitter,
                                lambda x, r: optics_jitter(x, 0.4, r), lambda x, r: lab_jitter(x, 0.4, r)])
def test_jitters_keep_shape_and_range_and_depend_on_the_seed(fn) -> None:  # type: ignore[no-untyped-def]
    a = fn(RGB, np.random.default_rng(0))
    b = fn(RGB, np.random.default_rng(0))
    assert a.shape == RGB.shape and a.dtype == np.float32 and a.min() >= 0 and a.max() <= 1
    np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(fn(RGB, np.random.default_rng(s)), a) for s in (1, 2, 3))


def test_zero_spread_stain_jitter_changes_nothing() -> None:
    out = stain_jitter(RGB, np.random.default_rng(3), sd=0.0)
    np.testing.assert_allclose(out, np.clip(RGB, 0, 1), atol=1e-4)


@pytest.mark.parametrize("seed", range(4))
def test_stain_jitter_changes_density_but_not_where_the_nuclei_are(seed: int) -> None:
    d0 = net_input(RGB, 0.4)[0].sum(axis=0)
    d1 = net_input(stain_jitter(RGB, np.random.default_rng(seed)), 0.4)[0].sum(axis=0)
    assert not np.allclose(d0, d1, atol=0.05)
    top0, top1 = d0 > np.percentile(d0, 98), d1 > np.percentile(d1, 98)
    assert (top0 & top1).sum() > 0.7 * top0.sum()  # the densest pixels (nuclei) stay the densest


def test_fade_pulls_the_density_towards_grey_and_off_changes_nothing() -> None:
    img = srgb_to_linear(drawn_smear(seed=4))
    plain = stain_jitter(img, np.random.default_rng(5))
    np.testing.assert_array_equal(stain_jitter(img, np.random.default_rng(5), fade=0.0), plain)
    white = np.percentile(img.reshape(3, -1), 99, axis=1)[:, None, None]

    def chroma(x: np.ndarray) -> float:  # spread of the optical density between channels
        od = -np.log10(np.maximum(x / white, 1e-4))
        return float(np.mean(od.max(axis=0) - od.min(axis=0)))

    faded = [chroma(stain_jitter(img, np.random.default_rng(s), sd=0.0, fade=0.9)) for s in range(8)]
    assert min(faded) < 0.75 * chroma(img) and max(faded) <= chroma(img) * 1.001  # half are faded, none more vivid
