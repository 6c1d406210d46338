"""Tests of sim/rasterize.py."""

from __future__ import annotations

import numpy as np
import pytest

from sim.maps import STRUCTURES
from sim.rasterize import Affine, rasterize
from sim.sample import SampleError, Smear, SmearConfig, make_smear, wbc_truth

FIELD = (60.0, 60.0)


@pytest.fixture(scope="module")
def smear() -> Smear:
    return make_smear(FIELD, 4, SmearConfig(wbc_per_mm2=1500.0, smudge_per_wbc=0.1, debris_per_mm2=2000.0))


def _grid(px: float) -> tuple[int, int]:
    n = round(FIELD[0] / px)
    return (n, n)


def test_two_pixel_sizes_agree_on_areas_and_integrated_thickness(smear: Smear) -> None:
    coarse = rasterize(smear, 0.293, _grid(0.293))
    fine = rasterize(smear, 0.1465, _grid(0.1465))
    vol_c = coarse.thickness_um.sum() * 0.293**2
    vol_f = fine.thickness_um.sum() * 0.1465**2
    assert vol_c == pytest.approx(vol_f, rel=0.01)
    for name in ("rbc", "cytoplasm", "nucleus"):
        area_c = (coarse.structure == STRUCTURES[name]).sum() * 0.293**2
        area_f = (fine.structure == STRUCTURES[name]).sum() * 0.1465**2
        assert area_c > 20.0 and area_c == pytest.approx(area_f, rel=0.04), name
    hb_c = coarse.absorbers["haemoglobin"].sum() * 0.293**2
    assert hb_c == pytest.approx(fine.absorbers["haemoglobin"].sum() * 0.1465**2, rel=0.01)


def test_thickness_is_smooth_at_sub_pixel_level(smear: Smear) -> None:
    """2×2-binned fine map ≈ coarse map: edges are anti-aliased, not stair-stepped."""
    coarse = rasterize(smear, 0.2, _grid(0.2)).thickness_um
    fine = rasterize(smear, 0.1, _grid(0.1)).thickness_um
    binned = fine.reshape(coarse.shape[0], 2, coarse.shape[1], 2).mean(axis=(1, 3))
    err = np.abs(binned - coarse)
    assert err.mean() < 0.002  # µm; without anti-aliasing ≈ 0.004
    assert np.quantile(err, 0.999) < 0.08  # without ≈ 0.17


def test_red_cell_thickness_profile_is_biconcave() -> None:
    smear = make_smear(FIELD, 9, SmearConfig(wbc_per_mm2=0.0))
    maps = rasterize(smear, 0.0586, _grid(0.0586))
    rbc = next(o for o in smear.of_kind("rbc") if 15 < o.center_um[0] < 45 and 15 < o.center_um[1] < 45)
    profile = rbc.parts[0].profile
    assert profile is not None
    r, c = (int(v / 0.0586) for v in (rbc.center_um[1], rbc.center_um[0]))
    cell = maps.instance == rbc.id + 1
    assert maps.thickness_um[r, c] == pytest.approx(profile.centre_um, rel=0.05)
    assert maps.thickness_um[cell].max() == pytest.approx(profile.height_um, rel=0.05)
    assert maps.n_minus_1[r, c] == pytest.approx(SmearConfig().n_rbc - 1.0, rel=1e-3)


def test_integer_pixel_shift_moves_the_maps_by_that_many_pixels(smear: Smear) -> None:
    px = 0.293
    ref = rasterize(smear, px, _grid(px))
    moved = rasterize(smear, px, _grid(px), transform=Affine(shift_um=(20 * px, -10 * px)))
    np.testing.assert_allclose(moved.thickness_um[:-10, 20:], ref.thickness_um[10:, :-20], atol=2e-3)
    assert (moved.structure[:-10, 20:] != ref.structure[10:, :-20]).mean() < 1e-3


def test_quarter_turn_rotates_the_image(smear: Smear) -> None:
    px = 0.293
    ref = rasterize(smear, px, _grid(px))
    mid = 0.5 * _grid(px)[0] * px  # the grid's own centre, so the pixel lattice maps onto itself
    turned = rasterize(smear, px, _grid(px), transform=Affine(rotation_deg=90.0, center_um=(mid, mid)))
    # +90° turns +x towards +y (clockwise on screen with y down): numpy's rot90 with k = -1.
    np.testing.assert_allclose(turned.thickness_um, np.rot90(ref.thickness_um, -1), atol=2e-3)


def test_scale_about_the_centre_scales_areas(smear: Smear) -> None:
    px = 0.293
    ref = rasterize(smear, px, _grid(px))
    big = rasterize(smear, px, (2 * _grid(px)[0], 2 * _grid(px)[1]),
                    transform=Affine(scale=2.0, center_um=(0.0, 0.0)))
    for name in ("rbc", "nucleus"):
        a_ref = (ref.structure == STRUCTURES[name]).sum()
        assert (big.structure == STRUCTURES[name]).sum() == pytest.approx(4 * a_ref, rel=0.03)


def test_labels_stack_nucleus_over_cytoplasm_and_use_object_ids(smear: Smear) -> None:
    px = 0.1465
    maps = rasterize(smear, px, _grid(px))
    inside = [c for c in wbc_truth(smear) if min(c["bbox_um"]) > 0 and max(c["bbox_um"]) < FIELD[0]]
    assert inside
    for cell in inside:
        x0, y0, x1, y1 = (int(v / px) for v in cell["bbox_um"])
        own = maps.instance[y0:y1, x0:x1] == cell["id"] + 1
        labels = set(np.unique(maps.structure[y0:y1, x0:x1][own]).tolist())
        assert {STRUCTURES["cytoplasm"], STRUCTURES["nucleus"]} <= labels
        assert STRUCTURES["rbc"] not in labels
        nucleus_px = (maps.structure[y0:y1, x0:x1][own] == STRUCTURES["nucleus"]).sum() * px**2
        assert nucleus_px <= cell["nucleus_area_um2"] * 1.05  # granules may lie on top
    assert maps.instance.max() <= len(smear.objects)
    assert (maps.structure == 0).sum() == (maps.instance == 0).sum()


def test_unstained_maps_hold_only_haemoglobin_and_grey_absorbers(smear: Smear) -> None:
    maps = rasterize(smear, 0.293, _grid(0.293))
    assert set(maps.absorbers) <= {"haemoglobin", "neutral"}
    od = maps.optical_density(532.0)
    rbc = maps.structure == STRUCTURES["rbc"]
    assert 0.01 < od[rbc].mean() < 0.1  # pale: a few hundredths at 532 nm
    assert od[maps.structure == STRUCTURES["nucleus"]].max() < 0.02


@pytest.mark.parametrize(("px", "shape"), [(0.0, (10, 10)), (-1.0, (10, 10)), (0.1, (0, 10)), (0.1, (10,))])
def test_bad_grids_are_rejected(smear: Smear, px: float, shape: tuple[int, int]) -> None:
    with pytest.raises(SampleError):
        rasterize(smear, px, shape)


def test_affine_round_trips() -> None:
    tf = Affine(shift_um=(3.0, -2.0), rotation_deg=0.4, scale=1.01)
    a, b = tf.forward((50.0, 40.0))
    ai, bi = tf.inverse((50.0, 40.0))
    p = np.array([12.0, 77.0])
    q = np.asarray(a) @ p + np.asarray(b)
    np.testing.assert_allclose(np.asarray(ai) @ q + np.asarray(bi), p, atol=1e-9)
    np.testing.assert_allclose(tf.apply(p[None], (50.0, 40.0))[0], q)
