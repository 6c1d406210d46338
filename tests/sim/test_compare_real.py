"""The real-vs-simulated comparison, pinned on small synthetic "real" stacks of the UConn format.

The real stacks are not part of the repository; a stack simulated at a known red-cell coverage and
written in their format stands in for one. The comparison must recover the coverage and find the
simulation it makes of the same physics indistinguishable, and it must notice a different physics.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from firmware_bridge.rigs import get_rig
from sim.compare_real import (
    NA_BINS,
    CompareConfig,
    SimSetup,
    blob_density,
    compare_real,
    cover_for_density,
    darkfield_mean,
    df_bf_bins,
    far_correlation,
    fit_diffuse_light,
    led_na,
    neighbour_correlation,
    pupil_na,
    real_floors,
    scatterer_density,
    second_ladder,
    sim_setup,
    simulate,
)
from sim.realstack import RealStack
from sim.sample import SmearConfig

SHAPE = (48, 48)


def _stack(cover: float, seed: int, medium_n: float = 1.0, defocus_um: float = -20.0,
           shape: tuple[int, int] = SHAPE, smear: SmearConfig | None = None) -> RealStack:
    rig = get_rig("uconn-15x15")
    rig = dataclasses.replace(rig, geometry=dataclasses.replace(rig.geometry, wavelengths_nm={"r": 630.0}))
    smear = dataclasses.replace(smear or SmearConfig(), rbc_cover=cover)
    images = simulate(SimSetup(rig, shape, defocus_um, smear, seed, medium_n, "wright-giemsa"))
    return RealStack(Path("synthetic.mat"), images, 630.0, defocus_um, 0.0, (0.0, 0.0))


@pytest.fixture(scope="module")
def same_physics() -> dict:
    report, _ = compare_real(_stack(0.15, seed=5), CompareConfig(seed=1))
    return report


def test_same_physics_matches_in_every_bin_and_in_contrast(same_physics: dict) -> None:
    bins = same_physics["bins"]
    assert [(b["na_lo"], b["na_hi"]) for b in bins] == list(NA_BINS)
    assert [b["n_leds"] for b in bins] == [4, 20, 44, 40, 56, 40]
    # A 48x48 crop holds ~40 red cells: another smear of the same physics differs by up to ~x1.8
    # per bin (seeds 5 vs 1), a different preparation by > x3 (below).
    for b in bins:
        assert b["factor"] < 2.0, b
    c = same_physics["bf_contrast"]
    assert abs(c["sim"] / c["real"] - 1.0) < 0.25
    for b in bins:  # a coherent speckle that moves with the angle on both sides
        assert abs(b["real_neighbour_corr"] - b["sim_neighbour_corr"]) < 0.2, b
    assert abs(same_physics["far_corr"]["real"] - same_physics["far_corr"]["sim"]) < 0.15
    assert same_physics["coverage"]["sim_rbc_cover"] == pytest.approx(0.15, abs=0.12)


def test_report_has_the_documented_shape(same_physics: dict) -> None:
    assert {"bins", "bf_contrast", "coverage", "boundary", "spectra", "worst_factor"} <= set(same_physics)
    assert set(same_physics["bins"][0]) >= {"na_lo", "na_hi", "n_leds", "real_df_bf", "sim_df_bf"}
    spec = same_physics["spectra"]["spectrum_df"]
    assert len(spec["freq_per_um"]) == len(spec["real"]) == len(spec["sim"])
    b = same_physics["boundary"]["real"]
    assert b["last_bright_na"] < 0.1 <= b["first_dark_na"]


def test_a_different_sample_preparation_is_noticed() -> None:
    # cells under a mounting medium scatter an order of magnitude less than air-dried ones
    report, _ = compare_real(_stack(0.15, seed=5, medium_n=1.5), CompareConfig(seed=1))
    assert report["worst_factor"] > 3.0


def test_df_bf_bins_average_the_leds_of_each_bin() -> None:
    na = np.array([0.0, 0.05, 0.12, 0.125, 0.2, 0.39])
    means = np.array([1.0, 0.8, 0.1, 0.05, 0.01, 0.001])
    bins = df_bf_bins(means, na, 0.1)
    assert bins[0]["df_bf"] == pytest.approx(0.075 / 0.9)
    assert bins[2]["df_bf"] == pytest.approx(0.01 / 0.9)
    assert bins[1]["df_bf"] is None and bins[1]["n_leds"] == 0


def test_blob_density_grows_with_red_cell_coverage() -> None:
    rig = _stack(0.05, seed=2).rig()
    na = led_na(rig)
    sparse = blob_density(darkfield_mean(_stack(0.05, seed=2).images, na), rig.sample_pixel_um)
    dense = blob_density(darkfield_mean(_stack(0.2, seed=2).images, na), rig.sample_pixel_um)
    assert 0 < sparse < dense


def test_pupil_na_keeps_a_nominal_na_the_stack_agrees_with_and_moves_one_it_contradicts() -> None:
    assert pupil_na({"last_bright_na": 0.098, "first_dark_na": 0.124}, 0.1) == 0.1
    # an LED at NA 0.1014 still in brightfield under a "0.1" objective: the pupil is just past it
    assert pupil_na({"last_bright_na": 0.1014, "first_dark_na": 0.1209}, 0.1) == pytest.approx(0.10335)
    assert pupil_na({"last_bright_na": 0.08, "first_dark_na": 0.09}, 0.1) == pytest.approx(0.089)


def test_report_says_which_objective_na_was_simulated(same_physics: dict) -> None:
    assert same_physics["objective_na_from"] == "pupil edge of the real stack"
    assert same_physics["objective_na"] == same_physics["objective_na_nominal"] == 0.1


# The second-order estimate on full-size (128x128, like the real stacks) synthetic fields: a ladder
# simulated with one seed, "real" fields of known coverage with another.
FULL = (128, 128)


def _density(stack: RealStack) -> float:
    setup = sim_setup(stack, CompareConfig())
    dark = darkfield_mean(stack.images, led_na(setup.rig), setup.rig.geometry.objective_na)
    return scatterer_density(dark, setup.rig.sample_pixel_um)


@pytest.fixture(scope="module")
def full_ladder() -> list[list[float]]:
    return second_ladder(sim_setup(_stack(0.3, seed=5, shape=FULL), CompareConfig(seed=1)))


@pytest.mark.parametrize("cover", [0.1, 0.3, 0.5])
def test_second_order_estimate_recovers_a_known_coverage(full_ladder: list[list[float]], cover: float) -> None:
    assert cover_for_density(_density(_stack(cover, seed=5, shape=FULL)), full_ladder) == pytest.approx(cover, abs=0.05)


def test_second_order_estimate_ignores_how_brightly_each_cell_scatters(full_ladder: list[list[float]]) -> None:
    # red cells of half the optical path scatter ~1.8x less into this darkfield; the
    # second-order estimate must not move
    dim = _stack(0.3, seed=5, shape=FULL, smear=SmearConfig(n_rbc=1.29))
    ours = _stack(0.3, seed=5, shape=FULL)
    assert dim.images.mean() > 0 and _darkfield_level(dim) < 0.6 * _darkfield_level(ours)
    assert cover_for_density(_density(dim), full_ladder) == pytest.approx(0.3, abs=0.05)


def _darkfield_level(stack: RealStack) -> float:
    na = led_na(stack.rig())
    return float(darkfield_mean(stack.images, na, 0.1).mean() / stack.images[na < 0.1].mean())


def test_cover_for_density_interpolates_in_log_density_on_the_rising_part() -> None:
    ladder = [[0.05, 50.0], [0.1, 10.0], [0.2, 100.0], [0.3, 1000.0]]
    assert cover_for_density(math.sqrt(100.0 * 1000.0), ladder) == pytest.approx(0.25)
    assert cover_for_density(1.0, ladder) == 0.1  # below the rising part: clamps
    assert cover_for_density(1e6, ladder) == 0.3


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


def test_fit_diffuse_light_finds_the_returned_light_of_a_stack() -> None:
    """A "real" stack with light returned from all directions at a known level: the level at which
    another smear of the same physics correlates as much between far-apart LEDs is close to it;
    a stack without any is fitted at (almost) none."""
    known = 1e-3
    rig = dataclasses.replace(get_rig("uconn-15x15"), geometry=dataclasses.replace(
        get_rig("uconn-15x15").geometry, wavelengths_nm={"r": 630.0}))
    smear = SmearConfig(rbc_cover=0.3)
    lit = SimSetup(rig, (64, 64), -20.0, smear, 5, 1.0, "wright-giemsa", diffuse_light=known)
    other = dataclasses.replace(lit, seed=1, diffuse_light=0.0)
    level, corr = fit_diffuse_light(other, far_correlation(simulate(lit), rig))
    assert known / 1.6 < level < known * 1.6, level
    assert corr is not None and corr > far_correlation(simulate(other), rig)
    dark = dataclasses.replace(lit, diffuse_light=0.0)
    level0, _ = fit_diffuse_light(other, far_correlation(simulate(dark), rig))
    assert level0 < known / 3  # two smears of 64x64 px differ by ~0.3 of the known level
