"""Simulate a real slide as the recovery measured it, then compare image by image.

:func:`sim.fpm.recover` measures what the real slide's cells are (coverage, absorption, phase
delay). Matching the simulated smear to those three numbers at the *object* level, and only
there, leaves every image-level figure of :func:`sim.compare_real.compare_real` — darkfield by
NA, brightfield contrast, spectra — as a test of the rest of the physics: cell shapes and edge
profiles, the optics, the LED and camera models.

Matched (each measured the same way, by recovering the simulated stack too):

* **coverage** → the smear's ``rbc_cover`` (bounded by the packing limit of the config);
* **phase delay** → the index of the medium around the cells: with red cells of dry protein
  (``n_rbc``) and the dry-mass thickness of :class:`sim.smearconfig.SmearConfig`, a delay far
  below air's says the slide is mounted under a coverslip (Δn = OPD / mean thickness);
* **absorption** → the strength of the stain bound by red cells at this wavelength (the style's
  azure/eosin balance kept, one factor on both dyes).

One correction step: the first simulation is guessed from the measurement, recovered, and each
parameter scaled by real/simulated; the second simulation is the one compared (and recovered
again, so the report shows how close the match came).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from sim.compare_real import CompareConfig, compare_real, sim_setup
from sim.fpm import RELIABLE_SIGN_MARGIN, FpmConfig, measure_field, recover
from sim.maps import STRUCTURES
from sim.rasterize import rasterize
from sim.realstack import RealStack
from sim.sample import make_smear
from sim.shapes import Profile
from sim.smearconfig import SMEAR_RANGES
from sim.stack_sim import SimSetup, simulate, with_smear
from sim.stain import STAIN_STYLES, StainStyle, stain_smear

#: What the recovery measures of the real and the simulated slide, side by side in the report.
SAMPLE_KEYS = ("coverage", "od", "phase_rad", "opd_nm")
#: First guess of simulated / nominal coverage (overlaps, white cells and the margin).
COVER_YIELD = 0.8
#: Upper bound of the red-cell stain factor (a slide can be stained far above the style's mean).
MAX_STAIN_FACTOR = 100.0


@dataclass(frozen=True)
class SlideGuess:
    """The simulated slide: nominal red-cell coverage, medium index and stain factor."""

    rbc_cover: float
    medium_n: float
    stain_factor: float


def _style(base: str, factor: float) -> StainStyle:
    """``base`` with the dyes red cells bind scaled by ``factor``."""
    style = STAIN_STYLES[base or "wright-giemsa"]
    loads = dict(style.loads)
    for key in ("rbc", "water_artefact"):
        az, eo = loads[key]
        loads[key] = (az * factor, eo * factor)
    return dataclasses.replace(style, name=f"{style.name}x{factor:.2f}", loads=loads)


def _apply(base: SimSetup, guess: SlideGuess, stain: str) -> SimSetup:
    setup = with_smear(base, rbc_cover=guess.rbc_cover)
    return dataclasses.replace(setup, medium_n=guess.medium_n, stain=_style(stain, guess.stain_factor))


def _measure(stack: RealStack, setup: SimSetup, iterations: int) -> dict[str, Any]:
    """The recovery's measure of ``setup`` simulated as ``stack`` was taken."""
    return _recovered(dataclasses.replace(stack, images=simulate(setup)), setup, iterations)


def _rbc_od(base: SimSetup, stain: str, factor: float, wavelength_nm: float) -> float:
    """Mean optical density of the stained red cells at ``wavelength_nm`` (maps, no optics)."""
    px = base.rig.sample_pixel_um
    h, w = base.shape
    smear = stain_smear(make_smear((w * px, h * px), base.seed, base.smear), base.seed, _style(stain, factor))
    maps = rasterize(smear, px / 2, (2 * h, 2 * w))
    return float(maps.optical_density(wavelength_nm)[maps.structure == STRUCTURES["rbc"]].mean())


def _first_guess(slide: dict[str, Any], own: dict[str, Any], base: SimSetup, stain: str, wavelength_nm: float,
                 mean_thickness_um: float) -> SlideGuess:
    """Coverage over the usual yield and the medium from Δn = OPD / mean thickness (both from the
    ``slide`` measurement), the stain factor from this colour's (``own``) optical density on the
    maps (linear in the factor)."""
    n_rbc = base.smear.n_rbc
    medium = float(np.clip(n_rbc - slide["opd_nm"] * 1e-3 / mean_thickness_um, 1.0, n_rbc))
    od0, od1 = (_rbc_od(base, stain, f, wavelength_nm) for f in (0.0, 1.0))
    factor = (own["od"] - od0) / (od1 - od0) if od1 > od0 else 1.0
    return SlideGuess(float(np.clip(slide["coverage"] / COVER_YIELD, 0.02, SMEAR_RANGES["rbc_cover"][1])), medium,
                      float(np.clip(factor, 0.0, MAX_STAIN_FACTOR)))


def _step(guess: SlideGuess, n_rbc: float, slide: tuple[dict[str, Any], dict[str, Any]],
          own: tuple[dict[str, Any], dict[str, Any]]) -> SlideGuess:
    """Scale each parameter by real / simulated (``(real, sim)`` pairs; absorption and the index
    step are, to first order, proportional to their parameter, coverage nearly so)."""
    (real, sim), (real_own, sim_own) = slide, own
    cover = guess.rbc_cover * real["coverage"] / max(sim["coverage"], 1e-6)
    dn = (n_rbc - guess.medium_n) * real["phase_rad"] / sim["phase_rad"] if sim["phase_rad"] > 0 else 0.0
    factor = guess.stain_factor * real_own["od"] / sim_own["od"] if sim_own["od"] > 0 else guess.stain_factor
    return SlideGuess(float(np.clip(cover, 0.02, SMEAR_RANGES["rbc_cover"][1])),
                      float(np.clip(n_rbc - dn, 1.0, n_rbc)), float(np.clip(factor, 0.0, MAX_STAIN_FACTOR)))


def _recovered(stack: RealStack, setup: SimSetup, iterations: int) -> dict[str, Any]:
    rec = recover(stack, setup.rig, FpmConfig(iterations=iterations))
    return measure_field(rec, stack.wavelength_nm) | {"sign_margin": rec.sign_margin}


def compare_as_recovered(stack: RealStack, config: CompareConfig | None = None, slide_from: RealStack | None = None,
                         iterations: int = 12) -> tuple[dict[str, Any], NDArray[np.float32]]:
    """:func:`compare_real` over a smear matched to the real slide's recovered coverage, phase and
    absorption; the report gains ``recovered`` (real vs simulated slide as recovered, and what was
    simulated). Coverage and medium are properties of the slide: ``slide_from`` (another colour
    of the same field, best the one furthest from focus, whose phase the recovery measures best)
    supplies them; the stain's absorption is this colour's own."""
    config = config or CompareConfig()
    base = sim_setup(stack, config)
    own = _recovered(stack, base, iterations)
    other = slide_from or stack
    other_base = sim_setup(other, config) if slide_from is not None else base
    slide = _recovered(other, other_base, iterations) if slide_from is not None else own
    if slide["phase_rad"] <= 0 or slide["coverage"] <= 0:
        raise ValueError(f"{other.path}: the recovery found no material that delays light "
                         f"(coverage {slide['coverage']:.3f}, phase {slide['phase_rad']:.3f} rad); "
                         "use --sample given")
    smear = base.smear
    mean_t = Profile("biconcave", smear.rbc_rim_um, smear.rbc_centre_um).area_mean_um()
    guess = _first_guess(slide, own, base, config.stain, stack.wavelength_nm, mean_t)
    sim_slide = _measure(other, _apply(other_base, guess, config.stain), iterations)
    sim_own = sim_slide if slide_from is None else _measure(stack, _apply(base, guess, config.stain), iterations)
    final_guess = _step(guess, smear.n_rbc, (slide, sim_slide), (own, sim_own))
    setup = _apply(base, final_guess, config.stain)
    report, sim_images = compare_real(stack, config, setup=setup)
    final = _recovered(dataclasses.replace(stack, images=sim_images), setup, iterations)
    warnings = []
    if slide["sign_margin"] < RELIABLE_SIGN_MARGIN:
        warnings.append(f"{other.path} is close to focus (other defocus sign fits x{slide['sign_margin']:.2f} worse): "
                        "its phase, hence the medium, is poorly measured; pass --slide-from a colour of the same "
                        "field further from focus")
    report["recovered"] = {
        "warnings": warnings,
        "method": "recovered (Fourier ptychography) on both stacks; coverage, phase and absorption matched",
        "slide_from": str(other.path),
        "real": {k: own[k] for k in SAMPLE_KEYS} | {"cells": own["cells"]},
        "sim": {k: final[k] for k in SAMPLE_KEYS} | {"cells": final["cells"]},
        "slide": {k: slide[k] for k in SAMPLE_KEYS},
        "simulated": dataclasses.asdict(final_guess) | {"mean_rbc_thickness_um": mean_t, "n_rbc": smear.n_rbc},
    }
    return report, sim_images

