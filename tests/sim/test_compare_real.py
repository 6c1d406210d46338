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

from firmware_bridge.rigs import get_rig
from sim.compare_real import CompareConfig, compare_real, cover_for_density, second_ladder, sim_setup
from sim.realstack import RealStack
from sim.sample import SmearConfig
from sim.stack_measures import NA_BINS, blob_density, darkfield_mean, led_na, mean_of, scatterer_density
from sim.stack_sim import SimSetup, simulate

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
    report, _ = compare_real(_stack(0.15, seed=5), CompareConfig(seed=1, fields=1))
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
    for b in bins:  # a coherent speckle that moves with the angle on both sides, as dark in its darkest places
        assert abs(b["real_neighbour_corr"] - b["sim_neighbour_corr"]) < 0.2, b
        assert abs(b["real_dark_floor"] - b["sim_dark_floor"]) < 0.1, b
    assert abs(same_physics["far_corr"]["real"] - same_physics["far_corr"]["sim"]) < 0.15
    assert same_physics["coverage"]["sim_rbc_cover"] == pytest.approx(0.15, abs=0.12)


def test_several_simulated_fields_are_averaged_and_the_first_is_the_single_draw(same_physics: dict) -> None:
    report, _ = compare_real(_stack(0.15, seed=5), CompareConfig(seed=1, fields=2))
    assert report["sample"]["seeds"] == [1, 2] and report["sample"]["fields"] == 2
    for one, two in zip(same_physics["bins"], report["bins"], strict=True):
        assert two["sim_df_bf_fields"][0] == pytest.approx(one["sim_df_bf"], rel=1e-6)  # seed 1, as alone
        assert two["sim_df_bf_fields"][1] != pytest.approx(one["sim_df_bf"], rel=1e-3)  # another draw
        assert two["sim_df_bf"] == pytest.approx(np.mean(two["sim_df_bf_fields"]), rel=1e-9)
    with pytest.raises(ValueError, match="fields must be an integer >= 1"):
        CompareConfig(fields=0)


def test_mean_of_averages_numbers_and_keeps_what_all_fields_share() -> None:
    a = {"bins": [{"n_leds": 4, "df_bf": 0.1}], "x": 1.0, "label": "r", "spec": (np.arange(3.0), np.ones(3))}
    b = {"bins": [{"n_leds": 4, "df_bf": 0.3}], "x": 3.0, "label": "r", "spec": (np.arange(3.0) + 2, np.ones(3))}
    m = mean_of([a, b])
    assert m["bins"] == [{"n_leds": 4, "df_bf": pytest.approx(0.2)}] and m["x"] == 2.0 and m["label"] == "r"
    np.testing.assert_allclose(m["spec"][0], [1.0, 2.0, 3.0])
    assert mean_of([a]) is a


def test_report_has_the_documented_shape(same_physics: dict) -> None:
    assert {"bins", "bf_contrast", "coverage", "boundary", "spectra", "worst_factor"} <= set(same_physics)
    assert set(same_physics["bins"][0]) >= {"na_lo", "na_hi", "n_leds", "real_df_bf", "sim_df_bf",
                                            "real_dark_floor", "sim_dark_floor"}
    spec = same_physics["spectra"]["spectrum_df"]
    assert len(spec["freq_per_um"]) == len(spec["real"]) == len(spec["sim"])
    b = same_physics["boundary"]["real"]
    assert b["last_bright_na"] < 0.1 <= b["first_dark_na"]


def test_a_different_sample_preparation_is_noticed() -> None:
    # cells under a mounting medium scatter an order of magnitude less than air-dried ones
    report, _ = compare_real(_stack(0.15, seed=5, medium_n=1.5), CompareConfig(seed=1, fields=1))
    assert report["worst_factor"] > 3.0


def test_blob_density_grows_with_red_cell_coverage() -> None:
    rig = _stack(0.05, seed=2).rig()
    na = led_na(rig)
    sparse = blob_density(darkfield_mean(_stack(0.05, seed=2).images, na), rig.sample_pixel_um)
    dense = blob_density(darkfield_mean(_stack(0.2, seed=2).images, na), rig.sample_pixel_um)
    assert 0 < sparse < dense


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
