"""A real stack's rig simulated: the light returned from all directions measured back."""

from __future__ import annotations

import dataclasses

from firmware_bridge.rigs import get_rig
from sim.sample import SmearConfig
from sim.stack_measures import far_correlation
from sim.stack_sim import SimSetup, fit_diffuse_light, simulate


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
