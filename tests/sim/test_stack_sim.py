"""A real stack's rig simulated: the light returned from all directions and the objective's stray
light at the pupil edge measured back."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from firmware_bridge.rigs import get_rig
from sim.optics import led_irradiance
from sim.sample import SmearConfig
from sim.stack_measures import far_correlation, led_na
from sim.stack_sim import EdgeStray, SimSetup, fit_diffuse_light, fit_edge_stray, simulate

RIG = dataclasses.replace(get_rig("uconn-15x15"), geometry=dataclasses.replace(
    get_rig("uconn-15x15").geometry, wavelengths_nm={"r": 630.0}))


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


def test_edge_stray_is_light_beyond_the_pupil_only_falling_by_e_per_falloff() -> None:
    stray = EdgeStray(0.04, 0.03)
    levels = stray.levels(np.array([0.0, 0.099, 0.1, 0.13, 0.16]), 0.1)
    assert levels[:2].tolist() == [0.0, 0.0]
    assert levels[2:] == pytest.approx([0.04, 0.04 / np.e, 0.04 / np.e**2])
    assert not EdgeStray().levels(np.array([0.2]), 0.1).any()
    with pytest.raises(ValueError, match="share must be in"):
        EdgeStray(0.5, 0.03)


def test_simulated_stray_light_is_even_and_scales_with_each_leds_irradiance() -> None:
    setup = SimSetup(RIG, (32, 32), -20.0, SmearConfig(rbc_cover=0.3), 5, 1.0, "wright-giemsa")
    stray = EdgeStray(0.04, 0.03)
    added = simulate(dataclasses.replace(setup, edge_stray=stray)) - simulate(setup)
    expected = stray.levels(led_na(RIG), RIG.geometry.objective_na) * led_irradiance(RIG.geometry.leds)
    assert added.reshape(len(added), -1).std(axis=1).max() < 1e-6  # even over the field
    assert added.mean(axis=(1, 2)) == pytest.approx(expected, abs=1e-6)


def test_fit_edge_stray_finds_the_stray_light_of_a_stack() -> None:
    """A "real" stack with stray light of known share and fall-off: measured against another smear
    of the same physics without it, from the darkfield's dark floor, the fit comes close; a stack
    without stray light is fitted at (almost) none."""
    known = EdgeStray(0.04, 0.03)
    real = SimSetup(RIG, (64, 64), -20.0, SmearConfig(rbc_cover=0.3), 5, 1.0, "wright-giemsa", edge_stray=known)
    other = simulate(dataclasses.replace(real, seed=1, edge_stray=EdgeStray()))
    fitted, even = fit_edge_stray(RIG, simulate(real), other)
    assert known.share / 1.5 < fitted.share < known.share * 1.5, fitted
    assert known.falloff_na / 1.5 < fitted.falloff_na < known.falloff_na * 1.5, fitted
    assert even[0] is not None and even[0] > 0.01  # ~0.04 / e^0.5 of brightfield in the first bin
    none, _ = fit_edge_stray(RIG, simulate(dataclasses.replace(real, edge_stray=EdgeStray())), other)
    assert none.share < known.share / 4, none
