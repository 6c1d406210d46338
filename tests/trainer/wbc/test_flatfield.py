"""Flat field from the image's own background: tint, vignetting and the field stop."""

from __future__ import annotations

import numpy as np

from tests.support.drawn_smear import drawn_smear
from trainer.wbc.finder import srgb_to_linear
from trainer.wbc.flatfield import flat_field, optical_density_ff


def test_glass_has_no_density_whatever_the_tint_and_vignetting() -> None:
    img = srgb_to_linear(drawn_smear(n_rbc=20, tint=(0.6, 1.0, 0.75), seed=4))
    od, ff = optical_density_ff(img)
    glass = img.mean(axis=0) > np.percentile(img.mean(axis=0), 60)
    assert np.abs(od[:, glass]).mean() < 0.02
    assert ff.field.all()
    # centre brighter than the corners, as drawn
    assert ff.white[1, 150, 200] > 1.15 * ff.white[1, 10, 10]


def test_field_stop_is_outside_the_field() -> None:
    img = srgb_to_linear(drawn_smear(field_stop=True, seed=5))
    ff = flat_field(img)
    assert not ff.field[0, 0] and not ff.field[-1, -1] and ff.field[150, 200]
    od, _ = optical_density_ff(img, ff)
    assert od[:, ~ff.field].max() == 0.0
