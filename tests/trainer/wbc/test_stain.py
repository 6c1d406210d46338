"""Per-image stain vectors and the ``stain`` finder on drawn photographs."""

from __future__ import annotations

import numpy as np
import pytest

from tests.support.drawn_smear import drawn_smear
from trainer.data.config import WbcConfig
from trainer.wbc.finder import find_wbcs, srgb_to_linear
from trainer.wbc.flatfield import optical_density_ff
from trainer.wbc.stain import stain_vectors

STAIN = WbcConfig(method="stain")


def test_stain_vectors_tell_red_cells_from_nuclei() -> None:
    od, _ = optical_density_ff(srgb_to_linear(drawn_smear(seed=1)))
    (red, nuc), frac = stain_vectors(od)
    # drawn eosin absorbs green most; the drawn nucleus absorbs red and green
    assert int(np.argmax(red)) == 1 and nuc[0] > 0.5 and nuc[0] > red[0]
    assert 0.05 < frac < 0.9


@pytest.mark.parametrize("tint", [(1.0, 0.95, 0.9), (0.6, 1.0, 0.75), (1.0, 0.7, 1.0)])
def test_stain_finder_holds_across_white_balance(tint: tuple[float, float, float]) -> None:
    cells = find_wbcs(srgb_to_linear(drawn_smear(seed=2, tint=tint)), 0.39, STAIN)
    got = sorted((round(c.x), round(c.y)) for c in cells)
    assert len(got) == 2
    for (x, y), (tx, ty) in zip(got, [(120, 150), (300, 200)], strict=True):
        assert abs(x - tx) < 6 and abs(y - ty) < 6


def test_red_cells_alone_are_not_white_cells() -> None:
    assert find_wbcs(srgb_to_linear(drawn_smear(seed=3, wbcs=())), 0.39, STAIN) == []


def test_cell_cut_by_the_border_is_marked() -> None:
    cells = find_wbcs(srgb_to_linear(drawn_smear(seed=4, wbcs=((120, 150), (396, 100)))), 0.39, STAIN)
    assert sorted((c.x > 300, c.cut) for c in cells) == [(False, False), (True, True)]
