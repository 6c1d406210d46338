from __future__ import annotations

import numpy as np

from edge.client import StainedCell
from edge.client.gallery import gallery, panel_names
from tests.edge.client.cells import P, cell


def test_panels_follow_what_arrived() -> None:
    assert panel_names([cell(0)]) == ["unstained", "darkfield", "stained", "truth"]
    assert panel_names([cell(0, truth=False, darkfield=False)]) == ["unstained", "stained"]
    assert panel_names([cell(0, truth=False), cell(1, darkfield=False)]) == ["unstained", "darkfield", "stained",
                                                                             "truth"]


def test_gallery_lays_out_four_panels_per_cell_under_a_header() -> None:
    img = gallery([cell(i) for i in range(5)], columns=2, scale=2)
    tile_w, tile_h = 4 * P * 2 + 4, P * 2 + 16 + 4
    assert img.dtype == np.uint8 and img.shape == (18 + 3 * tile_h, 2 * tile_w, 3)
    # the stain panel of the first tile is the cell's own stain, scaled x2 without interpolation
    first = cell(0).stained
    x0 = 2 + 2 * P * 2
    np.testing.assert_array_equal(img[18 + 2:18 + 2 + 2 * P:2, x0:x0 + 2 * P:2], first)


def test_named_stains_follow_the_stain_and_are_labelled_by_style() -> None:
    c = cell(0)
    styled = StainedCell(c.header, c.stained, c.unstained, {**c.extra, "stained:wright-giemsa": c.stained[::-1]})
    assert panel_names([styled, cell(1)]) == ["unstained", "darkfield", "stained", "stained:wright-giemsa", "truth"]
    img = gallery([styled], columns=1, scale=1)
    x0 = 2 + 3 * P  # the fourth panel: the named stain, drawn as it arrived
    np.testing.assert_array_equal(img[18 + 2:18 + 2 + P, x0:x0 + P], styled.styles["wright-giemsa"])
