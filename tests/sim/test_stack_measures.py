"""The measures of an LED-array stack on small synthetic inputs whose answer is known."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from firmware_bridge.rigs import get_rig
from sim.stack_measures import (
    NA_BINS,
    dark_floor,
    df_bf_bins,
    far_correlation,
    inner_brightfield,
    neighbour_correlation,
    pupil_na,
    real_floors,
    scatterer_density,
)


def test_df_bf_bins_average_the_leds_of_each_bin() -> None:
    na = np.array([0.0, 0.05, 0.12, 0.125, 0.2, 0.39])
    means = np.array([1.0, 0.8, 0.1, 0.05, 0.01, 0.001])
    bins = df_bf_bins(means, na, 0.1)
    assert bins[0]["df_bf"] == pytest.approx(0.075 / 0.9)
    assert bins[2]["df_bf"] == pytest.approx(0.01 / 0.9)
    assert bins[1]["df_bf"] is None and bins[1]["n_leds"] == 0


def test_brightfield_leds_at_the_pupil_edge_are_no_reference_for_darkfield() -> None:
    na = np.array([0.0, 0.05, 0.098, 0.12, 0.2])
    clear = np.array([1.0, 1.0, 1.0, 0.06, 0.01])
    vignetted = clear * [1.0, 1.0, 0.6, 1.0, 1.0]  # a real pupil's edge cuts the LED next to it
    assert [b["df_bf"] for b in df_bf_bins(vignetted, na, 0.1)] == [b["df_bf"] for b in df_bf_bins(clear, na, 0.1)]
    assert df_bf_bins(clear, na, 0.1)[0]["df_bf"] == pytest.approx(0.06)
    assert list(inner_brightfield(na, 0.1)) == [True, True, False, False, False]
    assert list(inner_brightfield(np.array([0.095, 0.12]), 0.1)) == [True, False]  # none inner: every brightfield LED


def test_pupil_na_keeps_a_nominal_na_the_stack_agrees_with_and_moves_one_it_contradicts() -> None:
    assert pupil_na({"last_bright_na": 0.098, "first_dark_na": 0.124}, 0.1) == 0.1
    # an LED at NA 0.1014 still in brightfield under a "0.1" objective: the pupil is just past it
    assert pupil_na({"last_bright_na": 0.1014, "first_dark_na": 0.1209}, 0.1) == pytest.approx(0.10335)
    assert pupil_na({"last_bright_na": 0.08, "first_dark_na": 0.09}, 0.1) == pytest.approx(0.089)


def test_scatterer_density_is_the_density_of_independent_spots() -> None:
    rng = np.random.default_rng(0)
    pixel_um, n_per_mm2 = 2.0, 2000.0
    shape = (512, 512)
    count = rng.poisson(n_per_mm2 * shape[0] * shape[1] * (pixel_um * 1e-3) ** 2 * np.ones(1))[0]
    img = np.zeros(shape)
    np.add.at(img, (rng.integers(0, shape[0], count), rng.integers(0, shape[1], count)), 3.0)
    spots = ndimage.gaussian_filter(img, 0.5)
    # Campbell's theorem holds for boxes much larger than a spot (the edge term falls as spot / box)
    assert scatterer_density(spots, pixel_um, box_px=32) == pytest.approx(n_per_mm2, rel=0.12)
    brighter = scatterer_density(5.0 * spots, pixel_um, box_px=32)
    assert brighter == pytest.approx(scatterer_density(spots, pixel_um, box_px=32))


def test_real_floors_find_each_clipped_image_and_leave_the_others() -> None:
    rng = np.random.default_rng(0)
    images = rng.uniform(0.5, 1.5, (3, 40, 40)).astype(np.float32)  # brightfield mean ~1
    images[1] = rng.uniform(0.01, 0.02, (40, 40))  # dim darkfield, clipped at 0.012 on 30 % of it
    images[1][images[1] < 0.012] = 0.012
    images[2] = rng.uniform(0.05, 0.06, (40, 40))  # brighter darkfield: its minimum is light, not a clip
    floors = real_floors(images, np.array([0.0, 0.3, 0.15]), 0.1)
    bright = float(images[0].mean())
    assert floors[0] == 0.0 and floors[2] == 0.0
    assert floors[1] == pytest.approx(0.012 / bright, rel=1e-5)


def test_neighbour_correlation_tells_angle_independent_light_from_speckle() -> None:
    rig = get_rig("uconn-15x15")
    rng = np.random.default_rng(1)
    n = len(rig.geometry.leds)
    speckle = rng.random((n, 16, 16)).astype(np.float32)  # every image its own pattern
    same = np.broadcast_to(rng.random((16, 16)), (n, 16, 16)).astype(np.float32) + 0.05 * speckle
    for images, lo, hi in ((speckle, -0.3, 0.3), (same, 0.95, 1.0)):
        corr = neighbour_correlation(images, rig)
        assert len(corr) == len(NA_BINS)
        assert all(c is not None and lo < c <= hi for c in corr), corr
        far = far_correlation(images, rig)
        assert far is not None and lo < far <= hi, far


def test_dark_floor_tells_light_added_evenly_from_coherent_speckle() -> None:
    rig = get_rig("uconn-15x15")
    na = np.array([led.na for led in rig.geometry.leds])
    rng = np.random.default_rng(2)
    # Fully developed speckle: exponential intensity, 1st percentile = -ln(0.99) ≈ 0.01 of the mean.
    speckle = rng.exponential(1.0, (len(na), 64, 64)).astype(np.float32)
    lifted = speckle + 0.5  # half the mean again, added evenly: (0.01 + 0.5) / 1.5 ≈ 0.34
    for images, expected in ((speckle, 0.01), (lifted, 0.34)):
        floors = dark_floor(images, na, rig.geometry.objective_na)
        assert len(floors) == len(NA_BINS)
        assert all(f is not None and f == pytest.approx(expected, abs=0.01) for f in floors), floors
    assert dark_floor(speckle, na, 0.5)[:4] == [None] * 4  # no darkfield LED below NA 0.32 under a 0.5 pupil
