"""The virtual microscope against a real LED-array stack: the same rig, wavelength and defocus over
a synthetic smear of the same red-cell coverage, measured the same way on both. The measures live
in :mod:`sim.stack_measures`, the simulation of a real stack's rig in :mod:`sim.stack_sim`; this
module estimates the coverage and puts the report together.

Measures (:func:`sim.stack_measures.measure`), all on mean-normalised images so that exposure and LED power cancel:

* **darkfield / brightfield by illumination NA**: the mean of the darkfield images of each NA bin
  (:data:`NA_BINS`) over the mean of the inner brightfield images (the LEDs within 0.9 of the objective NA,
  :func:`sim.stack_measures.inner_brightfield`: those next to the pupil's edge are partly cut by a real one);
* **brightfield contrast**: std / mean of the central-LED image;
* **neighbour correlation** of the darkfield images by NA bin (:func:`neighbour_correlation`):
  how much of the darkfield looks the same from neighbouring angles, and the **far correlation**
  (:func:`far_correlation`) of high-NA images lit from far-apart angles: light that does not
  depend on the angle at all;
* **dark floor** of the darkfield images by NA bin (:func:`sim.stack_measures.dark_floor`): their
  darkest places over their mean, low for coherent speckle, lifted by light added evenly;
* **radially averaged power spectra** of the central-LED image and of one darkfield image
  (the one nearest NA 0.2), each divided by its mean squared;
* **brightfield/darkfield boundary**: the NA between the dimmest image still brighter than the
  geometric mean of the brightfield level and the first darkfield bin's level and the brightest
  one below it; it should sit at the objective NA;
* **red-cell coverage**: the simulated smear's ``rbc_cover`` is chosen so that the simulated
  field shows as many low-NA darkfield blobs per mm² (:func:`blob_density`) as the real one
  (:func:`matched_cover`: a ladder of simulated coverages, interpolated). Counting blobs the same
  way on both sides cancels the counter's bias (touching cells merge at 2x).
* **second coverage estimate** (``coverage.second_estimate``; ``cover_method="second"`` simulates
  it): the low-NA darkfield's mean² over its box variance (:func:`scatterer_density`), which for
  independent cells does not depend on how brightly each scatters nor on blobs staying apart,
  matched on simulated coverages (:func:`second_ladder`, :func:`cover_for_density`).

Simulated images (:func:`sim.stack_sim.simulate`) include what the real ones went through: the LED's irradiance
(cos⁴ fall-off of a planar Lambertian array), the camera pixel's area and, image by image, the
level at which the real HDR merge clipped the darkest pixels (:func:`real_floors`). Here the real
slide is described by :class:`CompareConfig` (``stain``, ``medium_n``) at an estimated coverage; :mod:`sim.slide_match`
instead matches the simulated slide to what :mod:`sim.fpm` recovers of the real one.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from sim.microscope import MAX_DIFFUSE_LIGHT
from sim.realstack import RealStack
from sim.sample import SmearConfig
from sim.smearconfig import SMEAR_RANGES
from sim.stack_measures import (
    DENSITY_BOX_PX,
    FAR_APART,
    FAR_NA,
    blob_density,
    boundary,
    darkfield_mean,
    led_na,
    mean_of,
    measure,
    pupil_na,
    real_floors,
    scatterer_density,
)
from sim.stack_sim import (
    EdgeStray,
    SimSetup,
    clip_at_floors,
    fit_diffuse_light,
    fit_edge_stray,
    simulate,
    with_edge_stray,
    with_smear,
)

#: Red-cell coverages simulated to turn a blob density into a coverage (:func:`matched_cover`).
COVER_LADDER = (0.04, 0.08, 0.12, 0.18, 0.26, 0.36, 0.48)
#: Coverages simulated to turn the second-order statistic into a coverage (:func:`second_ladder`).
SECOND_LADDER = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6)


def second_ladder(setup: SimSetup) -> list[list[float]]:
    """:func:`scatterer_density` of ``setup`` simulated at every :data:`SECOND_LADDER` coverage:
    ``[[cover, density]]``."""
    na, obj = led_na(setup.rig), setup.rig.geometry.objective_na
    return [[cover, scatterer_density(darkfield_mean(simulate(with_smear(setup, rbc_cover=cover)), na, obj),
                                      setup.rig.sample_pixel_um)] for cover in SECOND_LADDER]

def cover_for_density(density: float, ladder: list[list[float]]) -> float:
    """The coverage of a :func:`second_ladder` at which the density is ``density``: interpolated in
    log density (it grows about tenfold per +0.2 of coverage) on the rising part of the ladder;
    densities beyond it clamp to its ends."""
    start = max((i for i in range(1, len(ladder)) if ladder[i][1] <= ladder[i - 1][1]), default=0)
    covers, dens = zip(*ladder[start:], strict=True)
    return float(np.interp(math.log(max(density, 1e-12)), np.log(np.maximum(dens, 1e-12)), covers))

@dataclass(frozen=True)
class CompareConfig:
    """Options of :func:`compare_real`: the slide's preparation and the simulation seed.

    ``stain`` is the Romanowsky style of the real slide ("" = unstained); ``medium_n`` the index
    around the cells (1.0: air-dried, uncovered; ≈1.5: under a coverslip in mounting medium)."""

    rig: str = "uconn-15x15"
    stain: str = "wright-giemsa"
    medium_n: float = 1.0
    seed: int = 0
    #: None: the pupil the real stack shows (:func:`pupil_na`); a number replaces the rig's NA.
    objective_na: float | None = None
    #: Keep the rig's nominal NA even where the real stack contradicts it.
    nominal_na: bool = False
    #: Which coverage estimate the simulation uses: "blobs" (:func:`matched_cover`) or "second"
    #: (:func:`second_ladder`); both are reported.
    cover_method: str = "second"
    #: Light returned to the sample from all directions (its image's mean over clear brightfield);
    #: None: measured on the real stack (:func:`fit_diffuse_light`).
    diffuse_light: float | None = None
    #: The red cells' texture (``SmearConfig.rbc_texture``) with ``--sample recovered``; None:
    #: matched to the real slide's fine structure, together with the dye's patchiness and its
    #: uptake spread from cell to cell (:mod:`sim.slide_match`); a number: that texture, evenly
    #: dyed cells, the style's uptake spread.
    rbc_texture: float | None = None
    #: The objective's stray light at the pupil edge; None: measured on the real stack
    #: (:func:`sim.stack_sim.fit_edge_stray`).
    edge_stray: EdgeStray | None = None
    #: Simulated fields (seeds ``seed``, ``seed + 1``, ...) whose measures are averaged: one real field
    #: is one draw of its slide, and so is each simulated one; the average is the simulated slide's.
    fields: int = 3

    def __post_init__(self) -> None:
        if not isinstance(self.fields, int) or self.fields < 1:
            raise ValueError(f"CompareConfig.fields must be an integer >= 1, got {self.fields!r}")
        if self.cover_method not in ("blobs", "second"):
            raise ValueError(f"CompareConfig.cover_method must be 'blobs' or 'second', got {self.cover_method!r}")
        if self.diffuse_light is not None and not 0.0 <= self.diffuse_light <= MAX_DIFFUSE_LIGHT:
            raise ValueError(f"CompareConfig.diffuse_light must be in [0, {MAX_DIFFUSE_LIGHT}] or None (measure "
                             f"it), got {self.diffuse_light}")
        top = SMEAR_RANGES["rbc_texture"][1]
        if self.rbc_texture is not None and not 0.0 <= self.rbc_texture <= top:
            raise ValueError(f"CompareConfig.rbc_texture must be in [0, {top}] or None (match it to the real "
                             f"slide), got {self.rbc_texture}")

def sim_setup(stack: RealStack, config: CompareConfig) -> SimSetup:
    """The simulation of ``stack``: its rig (objective NA replaced if asked), field size, defocus
    and floor; the smear's coverage is set later."""
    rig = stack.rig(config.rig)
    nominal = rig.geometry.objective_na
    na = config.objective_na
    if na is None and not config.nominal_na:
        means = stack.images.reshape(len(stack.images), -1).mean(axis=1).astype(np.float64)
        na = pupil_na(boundary(means, led_na(rig), nominal), nominal)
    if na is not None and na != nominal:
        rig = dataclasses.replace(rig, geometry=rig.geometry.with_objective(na))
    floors = real_floors(stack.images, led_na(rig), rig.geometry.objective_na)
    return SimSetup(rig, stack.images.shape[1:], stack.defocus_um, SmearConfig(), config.seed,
                    config.medium_n, config.stain, floors)

def estimate_cover(stack: RealStack, config: CompareConfig = CompareConfig()
                   ) -> tuple[float, float, list[list[float]]]:
    """Red-cell coverage of ``stack``'s field (:func:`matched_cover`): (coverage, real blob density,
    ladder). Counting works best near focus: for a strongly defocused colour, estimate it on a
    better-focused colour of the same field (``compare-real --cover-from``)."""
    setup = sim_setup(stack, config)
    density = blob_density(darkfield_mean(stack.images, led_na(setup.rig), setup.rig.geometry.objective_na),
                           setup.rig.sample_pixel_um)
    cover, ladder = matched_cover(setup, density)
    return cover, density, ladder

def second_estimate(stack: RealStack, config: CompareConfig = CompareConfig()) -> dict[str, Any]:
    """Red-cell coverage of ``stack``'s field from the second-order statistics of its low-NA
    darkfield (:func:`scatterer_density`, matched on :func:`second_ladder`): JSON-ready."""
    setup = sim_setup(stack, config)
    rig = setup.rig
    density = scatterer_density(darkfield_mean(stack.images, led_na(rig), rig.geometry.objective_na),
                                rig.sample_pixel_um)
    ladder = second_ladder(setup)
    return {"rbc_cover": cover_for_density(density, ladder), "real_per_mm2": density, "ladder": ladder,
            "box_px": DENSITY_BOX_PX,
            "method": "rbc_cover whose simulated low-NA darkfield mean² / (box variance x box area) "
                      "matches the real one (independent of each cell's brightness; cells may touch)"}

def compare_real(stack: RealStack, config: CompareConfig = CompareConfig(), cover_from: RealStack | None = None,
                 setup: SimSetup | None = None) -> tuple[dict[str, Any], NDArray[np.float32]]:
    """Measure ``stack`` and its simulation; returns the report (JSON-ready) and the simulated images.
    The coverage is estimated on ``cover_from`` (another colour of the same field) when given;
    ``setup`` replaces the estimate altogether (:mod:`sim.slide_match` matches one to a recovery)."""
    base = sim_setup(stack, config)
    rig = base.rig
    real = measure(stack.images, rig)
    if setup is None:
        cover, _, ladder = estimate_cover(cover_from or stack, config)
        second = second_estimate(cover_from or stack, config)
        used = cover if config.cover_method == "blobs" else second["rbc_cover"]
        setup = with_smear(base, rbc_cover=used)
        coverage: dict[str, Any] = {
            "used": config.cover_method, "blob_rbc_cover": cover, "estimated_on": str((cover_from or stack).path),
            "ladder": ladder, "method": "rbc_cover whose simulated low-NA darkfield blob density matches the real one",
            "second_estimate": second}
    else:
        coverage = {"used": "given"}
    if config.diffuse_light is None:
        level, _ = fit_diffuse_light(setup, real["far_corr"])
        setup = dataclasses.replace(setup, diffuse_light=level)
    else:
        setup = dataclasses.replace(setup, diffuse_light=config.diffuse_light)
    even: list[float | None] | None = None
    if config.edge_stray is None:  # stray light is even and additive: one simulation serves with and without
        unclipped = simulate(dataclasses.replace(setup, floors=(), edge_stray=EdgeStray()))
        stray, even = fit_edge_stray(rig, stack.images, clip_at_floors(unclipped, setup))
        setup = dataclasses.replace(setup, edge_stray=stray)
        sim_images = clip_at_floors(with_edge_stray(unclipped, setup), setup)
    else:
        setup = dataclasses.replace(setup, edge_stray=config.edge_stray)
        sim_images = simulate(setup)
    fields = [measure(sim_images, rig)] + [measure(simulate(field), rig) for field in other_fields(setup, config)]
    sim = mean_of(fields)
    bins = [{"na_lo": r["na_lo"], "na_hi": r["na_hi"], "n_leds": r["n_leds"], "real_df_bf": r["df_bf"],
             "sim_df_bf": s["df_bf"], "factor": _factor(r["df_bf"], s["df_bf"]),
             "sim_df_bf_fields": [f["bins"][i]["df_bf"] for f in fields],
             "real_neighbour_corr": rc, "sim_neighbour_corr": sc, "real_dark_floor": rf, "sim_dark_floor": sf}
            for i, (r, s, rc, sc, rf, sf) in enumerate(zip(real["bins"], sim["bins"], real["neighbour_corr"],
                                                           sim["neighbour_corr"], real["dark_floor"],
                                                           sim["dark_floor"], strict=True))]
    report = {
        "file": str(stack.path), "wavelength_nm": stack.wavelength_nm, "defocus_um": stack.defocus_um,
        "rig": rig.name, "objective_na": rig.geometry.objective_na,
        "objective_na_nominal": stack.rig(config.rig).geometry.objective_na,
        "objective_na_from": ("given" if config.objective_na is not None else "rig" if config.nominal_na
                              else "pupil edge of the real stack"),
        "pixel_um": rig.sample_pixel_um,
        "shape": list(stack.images.shape[1:]),
        "sample": {"stain": (setup.stain or "none") if isinstance(setup.stain, str) else setup.stain.name,
                   "medium_n": setup.medium_n, "seed": setup.seed, "fields": len(fields),
                   "seeds": [setup.seed + k for k in range(len(fields))]},
        "bins": bins,
        "worst_factor": max((b["factor"] for b in bins if b["factor"] is not None), default=None),
        "bf_contrast": {"real": real["bf_contrast"], "sim": sim["bf_contrast"]},
        "far_corr": {"real": real["far_corr"], "sim": sim["far_corr"], "min_na": FAR_NA, "apart_na": FAR_APART},
        "diffuse_light": {"level": setup.diffuse_light, "from": "given" if config.diffuse_light is not None else
                          "the real far correlation"},
        "edge_stray": {"share": setup.edge_stray.share, "falloff_na": setup.edge_stray.falloff_na,
                       "from": "given" if config.edge_stray is not None else "the real stack's dark floor",
                       "even_light_df_bf": even},
        "coverage": {"sim_rbc_cover": setup.smear.rbc_cover, **coverage, "real_blobs_per_mm2": real["blob_density"],
                     "sim_blobs_per_mm2": sim["blob_density"]},
        "clipped": {"leds": sum(f > 0 for f in setup.floors),
                    "floor_df_bf": [min((f for f in setup.floors if f > 0), default=0.0),
                                    max(setup.floors, default=0.0)]},
        "boundary": {"real": real["boundary"], "sim": sim["boundary"]},
        "spectra": {k: {"freq_per_um": real[k][0], "real": real[k][1], "sim": sim[k][1]}
                    for k in ("spectrum_bf", "spectrum_df")},
        "spectrum_df_na": real["spectrum_df_na"],
        "images": real["images"],
    }
    return report, sim_images

def other_fields(setup: SimSetup, config: CompareConfig) -> list[SimSetup]:
    """``setup`` for the simulated fields after the first (:attr:`CompareConfig.fields`): the same slide,
    drawn with the next seeds."""
    return [dataclasses.replace(setup, seed=setup.seed + k) for k in range(1, config.fields)]

def _factor(real: float | None, sim: float | None) -> float | None:
    """How far apart two ratios are (≥ 1, either direction)."""
    if not real or not sim:
        return None
    return max(real / sim, sim / real)

def matched_cover(setup: SimSetup, density: float) -> tuple[float, list[list[float]]]:
    """The ``rbc_cover`` whose simulated :func:`blob_density` equals ``density``: simulated over
    :data:`COVER_LADDER`, interpolated on the rising part of the curve (blobs merge in dense
    fields, so the count saturates); returns the coverage and the ladder ``[[cover, density]]``."""
    ladder: list[list[float]] = []
    for cover in COVER_LADDER:
        dark = darkfield_mean(simulate(with_smear(setup, rbc_cover=cover)), led_na(setup.rig),
                              setup.rig.geometry.objective_na)
        d = blob_density(dark, setup.rig.sample_pixel_um)
        if ladder and d <= ladder[-1][1]:
            break  # saturated: denser fields show no more blobs
        ladder.append([cover, d])
    covers, dens = zip(*ladder, strict=True)
    return float(np.interp(density, dens, covers)), ladder
