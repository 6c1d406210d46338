"""Pixel size from the red cells (``--pixel-size-um auto``) and its refusal."""

from __future__ import annotations

import numpy as np
import pytest

from tests.support.drawn_smear import drawn_smear
from trainer.wbc.finder import srgb_to_linear
from trainer.wbc.rbcscale import (
    RBC_DIAMETER_UM,
    ScaleError,
    estimate_pixel_size,
    folder_pixel_size,
    single_cell_diameters,
)


@pytest.mark.parametrize("rbc_px", [14.0, 20.0, 30.0])
def test_scale_from_drawn_red_cells(rbc_px: float) -> None:
    img = srgb_to_linear(drawn_smear(300, 400, rbc_px, int(80 * (20 / rbc_px) ** 2), seed=int(rbc_px)))
    est = estimate_pixel_size(img)
    assert est.pixel_size_um == pytest.approx(RBC_DIAMETER_UM / rbc_px, rel=0.06)
    assert est.cells >= 20 and est.spread < 0.1


def test_white_balance_and_field_stop_do_not_move_the_scale() -> None:
    plain = estimate_pixel_size(srgb_to_linear(drawn_smear(seed=1))).pixel_size_um
    odd = estimate_pixel_size(srgb_to_linear(drawn_smear(seed=1, tint=(0.7, 1.0, 0.8), field_stop=True)))
    assert odd.pixel_size_um == pytest.approx(plain, rel=0.05)


def test_refuses_an_image_without_enough_red_cells() -> None:
    few = srgb_to_linear(drawn_smear(n_rbc=3, seed=2))
    with pytest.raises(ScaleError, match=r"found \d+ single red cells, need 5.*--pixel-size-um"):
        estimate_pixel_size(few)
    blank = np.full((3, 200, 200), 0.8, np.float32)
    with pytest.raises(ScaleError):
        estimate_pixel_size(blank)
    with pytest.raises(ScaleError, match=r"2 images show \d single red cells between them, need 5"):
        folder_pixel_size([few, blank])


def test_folder_scale_skips_refused_images() -> None:
    good = srgb_to_linear(drawn_smear(seed=3))
    ps, n = folder_pixel_size([good, np.full((3, 200, 200), 0.8, np.float32)])
    assert n == 1 and ps == pytest.approx(RBC_DIAMETER_UM / 20, rel=0.06)


def test_close_ups_pool_their_red_cells() -> None:
    """High magnification: a few whole red cells per image, none alone enough; pooled, they give the
    scale, and an image whose only whole discs are small (platelets) cannot stand in for red cells."""
    close = [srgb_to_linear(drawn_smear(240, 320, 30.0, 3, wbcs=(), seed=10 + k)) for k in range(6)]
    with pytest.raises(ScaleError):
        estimate_pixel_size(close[0])
    specks = srgb_to_linear(drawn_smear(240, 320, 7.0, 12, wbcs=(), seed=20))
    assert estimate_pixel_size(specks).rbc_diameter_px < 9  # alone, the specks would be taken for red cells
    ps, n = folder_pixel_size([*close, specks])
    assert ps == pytest.approx(RBC_DIAMETER_UM / 30, rel=0.08) and n == 6  # the specks' image gave no red cell
    assert folder_pixel_size([srgb_to_linear(drawn_smear(seed=k)) for k in range(5)])[1] == 5  # per-image median


def test_a_disc_a_third_of_the_image_is_not_a_red_cell() -> None:
    """A blurred field whose red cells run into one round patch must not be measured as one huge cell."""
    import cv2

    img = np.full((300, 400, 3), 230, np.uint8)
    cv2.circle(img, (200, 150), 80, (150, 90, 170), -1)
    rgb = srgb_to_linear(np.moveaxis(img, -1, 0))
    assert single_cell_diameters(rgb).size == 0
    img[:] = 230
    cv2.circle(img, (200, 150), 45, (150, 90, 170), -1)  # a third of the side or less is measured
    assert single_cell_diameters(srgb_to_linear(np.moveaxis(img, -1, 0))) == pytest.approx([90], rel=0.05)


@pytest.mark.parametrize("seed", [1, 2])
def test_a_coarse_copy_reads_the_same_slide(seed: int) -> None:
    """A photograph taken at a third of the magnification (red cells 6 px across) gives three times the
    pixel size: at that size single cells are measured on an upsampled copy, not lost to the smoothing
    (before, the doublets that survived read the scale 8 % too fine)."""
    import cv2

    big = drawn_smear(600, 800, 18.0, 395, seed=seed)
    small = cv2.resize(np.moveaxis(big, 0, -1), None, fx=1 / 3, fy=1 / 3, interpolation=cv2.INTER_AREA)
    full = estimate_pixel_size(srgb_to_linear(big)).pixel_size_um
    coarse = estimate_pixel_size(srgb_to_linear(np.moveaxis(small, -1, 0).copy()))
    assert coarse.rbc_diameter_px < 10  # the upsampled branch
    assert coarse.pixel_size_um / 3 == pytest.approx(full, rel=0.03)
    assert folder_pixel_size([srgb_to_linear(np.moveaxis(small, -1, 0).copy())] * 5)[0] / 3 == pytest.approx(
        full, rel=0.03)


def test_images_of_specks_do_not_vote_on_the_scale() -> None:
    """Close-ups whose segmentation gives only small specks (noise, granules) must not outvote those that
    show red cells: each image's cells are taken in the red-cell band of all the images at once."""
    cells = [srgb_to_linear(drawn_smear(240, 320, 30.0, 8, wbcs=(), seed=30 + k)) for k in range(3)]
    specks = [srgb_to_linear(drawn_smear(240, 320, 7.0, 12, wbcs=(), seed=40 + k)) for k in range(3)]
    assert all(estimate_pixel_size(s).rbc_diameter_px < 9 for s in specks)  # each alone: specks as red cells
    assert all(estimate_pixel_size(c).cells >= 5 for c in cells)
    ps, n = folder_pixel_size([*cells, *specks])
    assert ps == pytest.approx(RBC_DIAMETER_UM / 30, rel=0.08) and n == 3
