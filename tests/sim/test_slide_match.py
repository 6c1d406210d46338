"""Simulating a slide as its recovery measured it: on a stack simulated from a known mounted,
stained smear of textured, patchily and unevenly dyed red cells, the match must find the medium it was made
with, its stain's absorption, its cells' texture, patchy dye and uptake spread, and then the image-level
comparison must find nothing to tell apart."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from firmware_bridge.rigs import get_rig
from sim.compare_real import CompareConfig
from sim.realstack import RealStack
from sim.sample import SmearConfig
from sim.slide_match import _style, compare_as_recovered
from sim.stack_sim import SimSetup, simulate

SHAPE = (64, 64)
MEDIUM_N = 1.47
STAIN_FACTOR = 6.0
TEXTURE = 0.4
PATCHINESS = 0.6
JITTER = 0.3


@pytest.fixture(scope="module")
def report() -> dict:
    rig = get_rig("uconn-15x15")
    rig = dataclasses.replace(rig, geometry=dataclasses.replace(rig.geometry, wavelengths_nm={"r": 630.0}))
    smear = SmearConfig(rbc_cover=0.45, rbc_texture=TEXTURE)
    setup = SimSetup(rig, SHAPE, -30.0, smear, 7, MEDIUM_N, _style("wright-giemsa", STAIN_FACTOR, PATCHINESS, JITTER))
    stack = RealStack(Path("synthetic.mat"), simulate(setup), 630.0, -30.0, 0.0, (0.0, 0.0))
    out, _ = compare_as_recovered(stack, CompareConfig(seed=2, fields=1), iterations=8)
    return out


def test_the_match_finds_the_medium_and_the_stain_the_slide_was_made_with(report: dict) -> None:
    made = report["recovered"]["simulated"]
    assert made["medium_n"] == pytest.approx(MEDIUM_N, abs=0.02)
    # The stain factor lands within the style's slide-to-slide variation (another seed draws
    # another dye strength), so the absorption it gives is what must match.
    assert 1.0 < made["stain_factor"] / STAIN_FACTOR < 2.0
    real, sim = report["recovered"]["real"], report["recovered"]["sim"]
    assert sim["phase_rad"] == pytest.approx(real["phase_rad"], rel=0.15)
    assert sim["od"] == pytest.approx(real["od"], rel=0.2)


def test_the_match_finds_the_texture_the_patchy_dye_and_the_uptake_spread_of_the_cells(report: dict) -> None:
    made = report["recovered"]["simulated"]
    assert made["rbc_texture"] == pytest.approx(TEXTURE, abs=0.15)  # smooth cells (0) would be far off
    assert made["rbc_patchiness"] == pytest.approx(PATCHINESS, abs=0.25)  # evenly dyed (0) would be far off
    assert made["cell_jitter"] == pytest.approx(JITTER, abs=0.15)  # the style's 0.08 would be off
    real, sim = report["recovered"]["real"], report["recovered"]["sim"]
    for key in ("fine_phase", "fine_amplitude"):
        assert sim[key] == pytest.approx(real[key], rel=0.15)


def test_same_physics_then_matches_image_by_image(report: dict) -> None:
    assert report["worst_factor"] < 1.35
    c = report["bf_contrast"]
    assert c["sim"] == pytest.approx(c["real"], rel=0.15)
    assert report["coverage"]["used"] == "given"
    assert report["recovered"]["warnings"] == []  # 30 µm from focus: phase well measured


def test_a_thin_object_accounts_for_each_darkfield_bin_of_both_alike(report: dict) -> None:
    """Stack and simulation are the same physics, so in both the object fitted to the other images predicts the
    same share of each darkfield bin (most of it; the sequential fit's shortfall is largest next to the pupil edge).
    On the real red UConn stack the first bin reads 0.2 against its simulation's 0.5."""
    real, sim = report["recovered"]["real"]["explained"], report["recovered"]["sim"]["explained"]
    assert len(real) == len(sim) == len(report["bins"])
    for r, s in zip(real, sim, strict=True):
        assert 0.6 < r < 1.2 and s == pytest.approx(r, abs=0.1)
