"""Simulate a real slide as the recovery measured it, then compare image by image.

:func:`sim.fpm.recover` measures what the real slide's cells are (coverage, absorption, phase
delay, fine structure). Matching the simulated smear to those numbers at the *object* level, and only
there, leaves every image-level figure of :func:`sim.compare_real.compare_real` — darkfield by
NA, brightfield contrast, spectra — as a test of the rest of the physics: cell shapes and edge
profiles, the optics, the LED and camera models.

Matched (each measured the same way, by recovering the simulated stack too):

* **coverage** → the smear's ``rbc_cover`` (up to the config's bound; past the monolayer's jam, cells pile);
* **phase delay** → the index of the medium around the cells: with red cells of dry protein
  (``n_rbc``) and the dry-mass thickness of :class:`sim.smearconfig.SmearConfig`, a delay far
  below air's says the slide is mounted under a coverslip (Δn = OPD / mean thickness);
* **absorption** → the strength of the stain at this wavelength, read on the red cells: one factor
  on both dyes (the style's azure/eosin balance kept) and on every part that binds them — a slide
  stained x16 the style's in red has platelets as dark as the real one's (~740 nearly opaque
  bodies per mm², about the platelet count), not only red cells;
* **fine structure** (the material's detail under ~3 µm: ``fine``) → the red cells' texture
  (``rbc_texture``, relative variation of their dry mass over ~2.5 µm patches), and its part in
  absorption (``fine_amplitude``) → how patchily they bound the dye
  (``StainStyle.rbc_patchiness``: a stained slide's dye can vary within a cell more than its
  mass — the real slide's fine structure is larger in absorption and smaller in phase than a
  mass texture matched to it gives). Smooth, evenly stained cells have some fine structure (their
  outlines); one extra simulation of them tells how much of the real slide's is texture;
* **cell-to-cell spread of absorption** (``cells.od.cv``: the separate cells' mean OD, its
  coefficient of variation) → how much the dye each cell takes up varies (``StainStyle.cell_jitter``;
  the real slide's cells differ twice as much as the style's 8 % and the cells' thickness
  spread give).

The simulations being matched carry the light returned from all directions at the level the real
stack's far correlation says (:func:`sim.stack_sim.fit_diffuse_light`) and the objective's stray
light at the pupil edge at the level its darkfield's dark floor says (:func:`sim.stack_sim.fit_edge_stray`),
both fitted once on the first guess: the real stack has them, and the recovery reads part of the
first as fine structure and of the second as absorption and phase.

Coverage, medium and texture are the slide's: with ``slide_from`` (another colour of the same
field) they are matched on that colour, with its own stain; then this colour's stain is matched
on that slide. Correction steps (:data:`CORRECTION_STEPS`): the first simulation is guessed from
the measurement, recovered, and each parameter scaled by real/simulated, twice (the texture moves
the recovered phase, so one step leaves it off); the last simulation is the one compared (and
recovered again, so the report shows how close the match came).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from sim.compare_real import CompareConfig, compare_real, other_fields, sim_setup
from sim.fpm import RELIABLE_SIGN_MARGIN, FpmConfig, explained_bins, measure_field, recover
from sim.maps import STRUCTURES
from sim.rasterize import rasterize
from sim.realstack import RealStack
from sim.sample import make_smear
from sim.shapes import Profile
from sim.smearconfig import SMEAR_RANGES
from sim.stack_measures import far_correlation, mean_of
from sim.stack_sim import SimSetup, fit_diffuse_light, fit_edge_stray, simulate, with_smear
from sim.stain import MAX_PATCHINESS, STAIN_STYLES, StainStyle, stain_smear

#: What the recovery measures of the real and the simulated slide, side by side in the report.
SAMPLE_KEYS = ("coverage", "od", "phase_rad", "opd_nm", "fine", "fine_amplitude", "fine_phase", "band_power",
               "spectrum", "explained")
#: First guess of simulated / nominal coverage (overlaps, white cells and the margin).
COVER_YIELD = 0.8
#: Upper bound of the stain factor (a slide can be stained far above the style's mean).
MAX_STAIN_FACTOR = 100.0
#: First guess of the red cells' texture (``SmearConfig.rbc_texture``).
TEXTURE_GUESS = 0.5
#: First guess of the red cells' patchy dye (``StainStyle.rbc_patchiness``).
PATCHINESS_GUESS = 0.5
#: First guess of the cell-to-cell spread of dye uptake (``StainStyle.cell_jitter``).
JITTER_GUESS = 0.2
#: Correction steps (each: simulate, recover, scale every parameter by real / simulated).
CORRECTION_STEPS = 2


@dataclass(frozen=True)
class SlideGuess:
    """The simulated slide: nominal red-cell coverage, medium index, stain factor, texture, patchy
    dye and the cell-to-cell spread of dye uptake (None: the style's)."""

    rbc_cover: float
    medium_n: float
    stain_factor: float
    rbc_texture: float = 0.0
    rbc_patchiness: float = 0.0
    cell_jitter: float | None = None


def _style(base: str, factor: float, patchiness: float = 0.0, jitter: float | None = None) -> StainStyle:
    """``base`` stained ``factor`` times as strongly (every dye load: red cells, platelets, white
    cells), red cells as patchily as ``patchiness``, the uptake spread from cell to cell by
    ``jitter`` (None: the style's)."""
    style = STAIN_STYLES[base or "wright-giemsa"]
    loads = {key: (az * factor, eo * factor) for key, (az, eo) in style.loads.items()}
    return dataclasses.replace(style, name=f"{style.name}x{factor:.2f}", loads=loads, rbc_patchiness=patchiness,
                               cell_jitter=style.cell_jitter if jitter is None else jitter)


def _apply(base: SimSetup, guess: SlideGuess, stain: str) -> SimSetup:
    setup = with_smear(base, rbc_cover=guess.rbc_cover, rbc_texture=guess.rbc_texture)
    return dataclasses.replace(setup, medium_n=guess.medium_n,
                               stain=_style(stain, guess.stain_factor, guess.rbc_patchiness, guess.cell_jitter))


def _measure(stack: RealStack, setup: SimSetup, iterations: int, config: CompareConfig) -> dict[str, Any]:
    """The recovery's measure of ``setup`` simulated as ``stack`` was taken, averaged over the
    configured fields (:attr:`CompareConfig.fields`)."""
    return mean_of([_recovered(dataclasses.replace(stack, images=simulate(s)), s, iterations)
                    for s in (setup, *other_fields(setup, config))])


def _rbc_od(base: SimSetup, stain: str, factor: float, wavelength_nm: float) -> float:
    """Mean optical density of the stained red cells at ``wavelength_nm`` (maps, no optics)."""
    px = base.rig.sample_pixel_um
    h, w = base.shape
    smear = stain_smear(make_smear((w * px, h * px), base.seed, base.smear), base.seed, _style(stain, factor))
    maps = rasterize(smear, px / 2, (2 * h, 2 * w))
    return float(maps.optical_density(wavelength_nm)[maps.structure == STRUCTURES["rbc"]].mean())


def _stain_factor(od: float, base: SimSetup, stain: str, wavelength_nm: float) -> float:
    """The stain factor whose red cells' mean optical density on the maps is ``od`` (linear in it)."""
    od0, od1 = (_rbc_od(base, stain, f, wavelength_nm) for f in (0.0, 1.0))
    factor = (od - od0) / (od1 - od0) if od1 > od0 else 1.0
    return float(np.clip(factor, 0.0, MAX_STAIN_FACTOR))


def _first_guess(measured: dict[str, Any], base: SimSetup, stain: str, wavelength_nm: float,
                 mean_thickness_um: float, texture: float, patchiness: float, jitter: float | None) -> SlideGuess:
    """Coverage over the usual yield, the medium from Δn = OPD / mean thickness, the stain factor
    from the optical density (:func:`_stain_factor`), texture, patchiness and jitter as given."""
    n_rbc = base.smear.n_rbc
    medium = float(np.clip(n_rbc - measured["opd_nm"] * 1e-3 / mean_thickness_um, 1.0, n_rbc))
    return SlideGuess(float(np.clip(measured["coverage"] / COVER_YIELD, 0.02, SMEAR_RANGES["rbc_cover"][1])), medium,
                      _stain_factor(measured["od"], base, stain, wavelength_nm), texture, patchiness, jitter)


def _added(value: float, real: float, sim: float, smooth: float, top: float) -> float:
    """``value`` scaled so that the variation it adds to smooth, even cells' (``smooth``, in
    quadrature) is the real slide's; kept while it adds nothing yet."""
    added = sim**2 - smooth**2
    if value <= 0 or added <= 0:
        return value
    return float(np.clip(value * math.sqrt(max(real**2 - smooth**2, 0.0) / added), 0.0, top))


def _od_cv(measured: dict[str, Any]) -> float:
    return float(measured["cells"]["od"]["cv"]) if measured["cells"]["count"] else 0.0


def _step(guess: SlideGuess, n_rbc: float, real: dict[str, Any], sim: dict[str, Any],
          smooth: dict[str, Any] | None) -> SlideGuess:
    """Scale each parameter by real / simulated (absorption and the index step are, to first order,
    proportional to their parameter, coverage nearly so). Texture, patchy dye and uptake spread
    add variation to what smooth, evenly stained cells have (``smooth``'s), in quadrature: the
    texture fine structure, the patchy dye fine structure in absorption (the texture adds some
    there too, which the patchiness leaves to it as the steps repeat), the uptake spread
    cell-to-cell differences of OD; None keeps the three as they are."""
    cover = guess.rbc_cover * real["coverage"] / max(sim["coverage"], 1e-6)
    dn = (n_rbc - guess.medium_n) * real["phase_rad"] / sim["phase_rad"] if sim["phase_rad"] > 0 else 0.0
    step = SlideGuess(float(np.clip(cover, 0.02, SMEAR_RANGES["rbc_cover"][1])),
                      float(np.clip(n_rbc - dn, 1.0, n_rbc)), _stain_step(guess.stain_factor, real, sim),
                      guess.rbc_texture, guess.rbc_patchiness, guess.cell_jitter)
    if smooth is None:
        return step
    jitter = guess.cell_jitter
    return dataclasses.replace(
        step,
        rbc_texture=_added(guess.rbc_texture, real["fine"], sim["fine"], smooth["fine"],
                           SMEAR_RANGES["rbc_texture"][1]),
        rbc_patchiness=_added(guess.rbc_patchiness, real["fine_amplitude"], sim["fine_amplitude"],
                              smooth["fine_amplitude"], MAX_PATCHINESS),
        cell_jitter=None if jitter is None else _added(jitter, _od_cv(real), _od_cv(sim), _od_cv(smooth), 1.0))


def _stain_step(factor: float, real: dict[str, Any], sim: dict[str, Any]) -> float:
    return float(np.clip(factor * real["od"] / sim["od"], 0.0, MAX_STAIN_FACTOR)) if sim["od"] > 0 else factor


def _lit(stack: RealStack, setup: SimSetup, config: CompareConfig) -> SimSetup:
    """``setup`` with the light returned from all directions and the stray light at the pupil edge:
    as configured, or measured on ``stack``."""
    light = config.diffuse_light
    if light is None:
        light = fit_diffuse_light(setup, far_correlation(stack.images, setup.rig))[0]
    setup = dataclasses.replace(setup, diffuse_light=light)
    stray = config.edge_stray
    if stray is None:
        stray = fit_edge_stray(setup.rig, stack.images, simulate(setup))[0]
    return dataclasses.replace(setup, edge_stray=stray)

def _lit_as(lit: SimSetup, setup: SimSetup) -> SimSetup:
    """``setup`` with ``lit``'s returned and stray light."""
    return dataclasses.replace(setup, diffuse_light=lit.diffuse_light, edge_stray=lit.edge_stray)


def _recovered(stack: RealStack, setup: SimSetup, iterations: int) -> dict[str, Any]:
    """The recovery's measures of ``stack`` and, per darkfield bin, the share of the images' light that the object
    fitted to the other images predicts (``explained``, :func:`sim.fpm.explained_bins`; None for a bin without LEDs)."""
    rec = recover(stack, setup.rig, FpmConfig(iterations=iterations))
    explained = [b["recovered_df_bf"] / b["real_df_bf"] if b["real_df_bf"] else None
                 for b in explained_bins(stack, setup.rig, rec)]
    return measure_field(rec, stack.wavelength_nm) | {"sign_margin": rec.sign_margin, "explained": explained}


def compare_as_recovered(stack: RealStack, config: CompareConfig | None = None, slide_from: RealStack | None = None,
                         iterations: int = 12) -> tuple[dict[str, Any], NDArray[np.float32]]:
    """:func:`compare_real` over a smear matched to the real slide's recovered coverage, phase,
    absorption and fine structure; the report gains ``recovered`` (real vs simulated slide as recovered, and what was
    simulated). Coverage, medium and texture are properties of the slide: ``slide_from`` (another
    colour of the same field, best the one furthest from focus, whose phase the recovery measures
    best) supplies them, matched with that colour's own stain; the stain's absorption here is this
    colour's own."""
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
    matched = config.rbc_texture is None
    texture = TEXTURE_GUESS if config.rbc_texture is None else config.rbc_texture
    # The slide (coverage, medium, texture, patchy dye) on its own colour, with that colour's stain ...
    guess = _first_guess(slide, other_base, config.stain, other.wavelength_nm, mean_t, texture,
                         PATCHINESS_GUESS if matched else 0.0, JITTER_GUESS if matched else None)
    slide_lit = _lit(other, _apply(other_base, guess, config.stain), config)

    def slide_as(g: SlideGuess) -> dict[str, Any]:
        return _measure(other, _lit_as(slide_lit, _apply(other_base, g, config.stain)), iterations, config)

    smooth = slide_as(dataclasses.replace(guess, rbc_texture=0.0, rbc_patchiness=0.0, cell_jitter=0.0)) if matched \
        else None
    for _ in range(CORRECTION_STEPS):
        guess = _step(guess, smear.n_rbc, slide, slide_as(guess), smooth)
    slide_stain = guess.stain_factor
    # ... then this colour's own stain on that slide.
    if slide_from is not None:
        guess = dataclasses.replace(guess, stain_factor=_stain_factor(own["od"], base, config.stain,
                                                                      stack.wavelength_nm))
        own_lit = _lit(stack, _apply(base, guess, config.stain), config)
        # Near focus the recovered absorption is not monotonic in the stain (green, 10 µm out:
        # x3.9 → OD 0.51, x3.5 → 0.58), so the factor kept is the measured one that came closest.
        tried = []
        for _ in range(CORRECTION_STEPS):
            sim_own = _measure(stack, _lit_as(own_lit, _apply(base, guess, config.stain)), iterations, config)
            tried.append((abs(sim_own["od"] - own["od"]), guess.stain_factor))
            guess = dataclasses.replace(guess, stain_factor=_stain_step(guess.stain_factor, own, sim_own))
        guess = dataclasses.replace(guess, stain_factor=min(tried)[1])
    final_guess = guess
    setup = _apply(base, final_guess, config.stain)
    report, sim_images = compare_real(stack, config, setup=setup)
    final = _recovered(dataclasses.replace(stack, images=sim_images), setup, iterations)  # the first field
    warnings = []
    if slide["sign_margin"] < RELIABLE_SIGN_MARGIN:
        warnings.append(f"{other.path} is close to focus (other defocus sign fits x{slide['sign_margin']:.2f} worse): "
                        "its phase, hence the medium, is poorly measured; pass --slide-from a colour of the same "
                        "field further from focus")
    report["recovered"] = {
        "warnings": warnings,
        "method": "recovered (Fourier ptychography) on both stacks; coverage, phase, absorption and "
                  "fine structure matched",
        "slide_from": str(other.path),
        "real": {k: own[k] for k in SAMPLE_KEYS} | {"cells": own["cells"]},
        "sim": {k: final[k] for k in SAMPLE_KEYS} | {"cells": final["cells"]},
        "slide": {k: slide[k] for k in SAMPLE_KEYS},
        "simulated": dataclasses.asdict(final_guess) | {"mean_rbc_thickness_um": mean_t, "n_rbc": smear.n_rbc,
                                                         "slide_stain_factor": slide_stain},
    }
    return report, sim_images

