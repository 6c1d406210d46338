"""The learned finders' shared input: normalised density, cut-band and coordinate helpers."""

from __future__ import annotations

import numpy as np
import pytest

from tests.support.drawn_smear import drawn_smear
from trainer.wbc.density import density_input, near_edge, net_input, to_image_px
from trainer.wbc.finder import srgb_to_linear
from trainer.wbc.flatfield import FLAT_BLOCK_UM


def test_net_input_is_at_one_micron_and_red_cells_are_one() -> None:
    rgb = srgb_to_linear(drawn_smear(seed=1, wbcs=()))
    density, field, zoom = net_input(rgb, 0.5)
    assert zoom == 0.5 and density.shape == (3, 150, 200) and field.all()
    material = density.sum(axis=0) > 1.0
    assert np.median(density[1][material]) == pytest.approx(1.0, abs=0.25)  # the red cells set the unit


def test_near_edge_marks_the_border_band_and_the_field_stop() -> None:
    field = np.ones((30, 40), bool)
    field[:, 30:] = False  # a field stop on the right
    edge = near_edge(field, reach_px=3)
    assert edge[0, 10] and edge[15, 2] and edge[15, 28] and edge[15, 35]
    assert not edge[15, 10] and not edge[4, 20]


def test_to_image_px_inverts_the_resampling() -> None:
    assert to_image_px(0, 0, 1.0) == (0.0, 0.0)
    assert to_image_px(10, 20, 0.5) == pytest.approx((40.5, 20.5))  # work px 20 covers image px 40-41


def test_a_small_field_keeps_the_density_of_a_cell_larger_than_its_blocks() -> None:
    # A 32x24 µm field at 0.1 µm/px (a close-up): a 16 µm white cell of OD 0.5 on clear glass. Blocks of an
    # eighth of the image (3 µm) would lie inside the cell and take it for glass (OD 0.3 was read); with the
    # floor of FLAT_BLOCK_UM the field holds two blocks a side, each with glass in it.
    h, w, ps = 240, 320, 0.1
    yy, xx = np.mgrid[0:h, 0:w]
    cell = (xx - 160) ** 2 + (yy - 120) ** 2 < 80**2
    od = np.where(cell, 0.5, 0.0).astype(np.float32)
    rgb = np.stack([0.8 * 10.0 ** (-od)] * 3).astype(np.float32)
    d = density_input(rgb, ps)
    assert FLAT_BLOCK_UM / ps > min(h, w) / 8
    assert np.median(d.od[:, cell]) == pytest.approx(0.5, abs=0.05)
    assert np.abs(d.od[:, ~cell]).max() < 0.05
