"""A real stack's rig simulated the way the stack was taken (:func:`simulate`): the same field
size, wavelength, defocus and pupil, each LED's irradiance fall-off, the camera pixel's area and
each image clipped where its real counterpart was; the light returned to the sample from all
directions (:func:`fit_diffuse_light`) and the objective's stray light at the pupil edge
(:func:`fit_edge_stray`), both measured on a real stack."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from firmware_bridge.rigs import Rig
from sim.camera import SensorConfig
from sim.microscope import MAX_DIFFUSE_LIGHT, Microscope, MicroscopeConfig
from sim.optics import led_irradiance
from sim.rasterize import Affine, rasterize
from sim.sample import SmearConfig, make_smear
from sim.stack_measures import NA_BINS, dark_floor, df_bf_bins, far_correlation, inner_brightfield, led_na
from sim.stain import StainStyle, stain_smear

#: Camera pixels of guard band around a simulated field (the FFT optics is periodic).
GUARD_PX = 12
#: :func:`fit_diffuse_light` simulates the returned light once at this level.
DIFFUSE_REF = 1e-3
#: Camera pixels are integrated over this many sub-samples per side.
PIXEL_SUBSAMPLES = 3
#: Stray light at the pupil edge (:class:`EdgeStray`) above this share of the beam would be a hole in the stop.
MAX_EDGE_STRAY = 0.2


@dataclass(frozen=True)
class EdgeStray:
    """Stray light of the unscattered beam of an LED just outside the objective's pupil: the beam
    strikes the aperture stop and the barrel next to the opening, and a share of it,
    ``share · exp(−(NA_LED − NA_objective) / falloff_na)`` of the LED's light on clear glass,
    reaches the camera spread evenly over the field. It ends where the beam stops entering the
    objective; it does not depend on the sample or the wavelength. (0, ·): none."""

    share: float = 0.0
    falloff_na: float = 0.03

    def __post_init__(self) -> None:
        if not 0.0 <= self.share <= MAX_EDGE_STRAY or not 0.0 < self.falloff_na <= 1.0:
            raise ValueError(f"EdgeStray: share must be in [0, {MAX_EDGE_STRAY}] and falloff_na in (0, 1], got "
                             f"{self.share}, {self.falloff_na}")

    def levels(self, na: NDArray[np.float64], objective_na: float) -> NDArray[np.float64]:
        """Per LED, the even light it adds, relative to its own clear brightfield."""
        beyond = na - objective_na
        return np.where(beyond >= 0.0, self.share * np.exp(-np.maximum(beyond, 0.0) / self.falloff_na), 0.0)


@dataclass(frozen=True)
class SimSetup:
    """How to simulate a real stack: rig, field size, defocus, smear and seed."""

    rig: Rig
    shape: tuple[int, int]
    defocus_um: float
    smear: SmearConfig
    seed: int = 0
    medium_n: float = 1.0
    stain: StainStyle | str = ""
    #: Per LED, the level below which the real image reads nothing, over the inner brightfield mean
    #: (:func:`real_floors`); empty: no clipping.
    floors: tuple[float, ...] = ()
    #: Light returned to the sample from all directions: its image's mean over clear brightfield
    #: (:class:`sim.microscope.MicroscopeConfig`; :func:`fit_diffuse_light` measures it).
    diffuse_light: float = 0.0
    #: The objective's stray light at the pupil edge (:func:`fit_edge_stray` measures it).
    edge_stray: EdgeStray = EdgeStray()

def oversample_for(rig: Rig) -> int:
    """Object-grid oversampling so the spectrum holds every frequency an LED scatters into the
    pupil: (max illumination NA + objective NA) / λ below the fine grid's Nyquist frequency."""
    g = rig.geometry
    need = (max(led.na for led in g.leds) + g.objective_na) / (min(g.wavelengths_nm.values()) * 1e-3)
    return max(1, math.ceil(2.0 * need * rig.sample_pixel_um))

def simulate(setup: SimSetup) -> NDArray[np.float32]:
    """Relative intensity ``(N, H, W)`` of every LED of the rig (first colour): the camera pixel
    integrates light over its area (rendered on a grid ``PIXEL_SUBSAMPLES`` times finer, then
    box-averaged), the LED's irradiance falls off as in :func:`sim.optics.relative_irradiance`, and
    each image is clipped where its real counterpart was (``setup.floors``, relative to the
    inner brightfield mean)."""
    rig, s = setup.rig, PIXEL_SUBSAMPLES
    fine_rig = dataclasses.replace(rig, camera_pixel_um=rig.camera_pixel_um / s)
    config = MicroscopeConfig(oversample=max(1, math.ceil(oversample_for(rig) / s)), defocus_um=setup.defocus_um,
                              medium_n=setup.medium_n, diffuse_light=setup.diffuse_light,
                              camera=SensorConfig(pixel_um=fine_rig.camera_pixel_um))
    m = Microscope(rig.geometry, config)
    h, w = setup.shape
    smear = make_smear((w * rig.sample_pixel_um, h * rig.sample_pixel_um), setup.seed, setup.smear)
    if setup.stain:
        smear = stain_smear(smear, setup.seed, setup.stain)
    g = GUARD_PX * s
    maps = rasterize(smear, m.fine_pixel_um, m.fine_shape((h * s + 2 * g, w * s + 2 * g)),
                     transform=Affine(shift_um=(g * m.pixel_um, g * m.pixel_um)))
    field = m.prepare(maps)
    out = np.empty((len(rig.geometry.leds), h, w), np.float32)
    for start in range(0, len(out), 32):
        leds = list(range(start, min(start + 32, len(out))))
        sub = field.intensities(leds)[:, 0, g : g + h * s, g : g + w * s]
        out[start : start + len(leds)] = sub.reshape(len(leds), h, s, w, s).mean(axis=(2, 4))
    out *= m.irradiance[:, None, None].astype(np.float32)
    return clip_at_floors(with_edge_stray(out, setup), setup)

def with_edge_stray(images: NDArray[np.float32], setup: SimSetup) -> NDArray[np.float32]:
    """Unclipped simulated ``images`` plus ``setup.edge_stray``: each LED's level times its irradiance
    (the stray light is a share of the LED's own beam), even over the field."""
    if not setup.edge_stray.share:
        return images
    rig = setup.rig
    add = setup.edge_stray.levels(led_na(rig), rig.geometry.objective_na) * led_irradiance(rig.geometry.leds)
    return images + add.astype(np.float32)[:, None, None]

def clip_at_floors(images: NDArray[np.float32], setup: SimSetup) -> NDArray[np.float32]:
    """Each image raised to its real counterpart's clip level (``setup.floors``, relative to the
    inner brightfield mean, as :func:`sim.stack_measures.real_floors` measured it)."""
    if not setup.floors:
        return images
    bright = images[inner_brightfield(led_na(setup.rig), setup.rig.geometry.objective_na)].mean()
    return np.maximum(images, (np.asarray(setup.floors, np.float32) * bright)[:, None, None])

def fit_diffuse_light(setup: SimSetup, real_far_corr: float | None) -> tuple[float, float | None]:
    """The returned light (``diffuse_light``) at which the simulation's :func:`far_correlation`
    equals the real stack's: the share of the darkfield that is the same from every angle, which
    only light arriving from all directions makes (the direct, coherent darkfield of a defocused
    thin object decorrelates between far-apart LEDs). Returns (level, simulated far correlation
    at it); 0 when the simulation already correlates as much without it. The brightness of each
    bin is not used: it stays a test of the result. The returned light adds linearly, so two
    simulations (without, and at a reference level) give every level; clipping is applied after."""
    rig = setup.rig
    plain = dataclasses.replace(setup, floors=(), diffuse_light=0.0)
    without = simulate(plain)
    with_ref = simulate(dataclasses.replace(plain, diffuse_light=DIFFUSE_REF))
    per_unit = (with_ref - without) / np.float32(DIFFUSE_REF)

    def far(level: float) -> float:
        value = far_correlation(clip_at_floors(without + np.float32(level) * per_unit, setup), rig)
        return -1.0 if value is None else value

    start = far(0.0)
    if real_far_corr is None or real_far_corr <= start:
        return 0.0, (None if real_far_corr is None else start)
    lo, hi = 0.0, MAX_DIFFUSE_LIGHT
    if far(hi) < real_far_corr:
        return hi, far(hi)
    for _ in range(30):  # bisection in log level; the correlation rises monotonically with it
        mid = math.sqrt(max(lo, 1e-7) * hi)
        lo, hi = (mid, hi) if far(mid) < real_far_corr else (lo, mid)
    return hi, far(hi)

def even_light(real: NDArray[np.float32], sim: NDArray[np.float32], na: NDArray[np.float64],
               objective_na: float) -> list[float | None]:
    """Per :data:`NA_BINS`, the light spread evenly over the real darkfield images beyond what the
    simulation has, over the inner brightfield mean. Each real image is read as the simulated kind of
    image (coherent speckle, dark floor ``f_s`` of its mean) scaled, plus an even level ``c``: its
    mean ``m`` and dark floor ``f`` (:func:`sim.stack_measures.dark_floor`) give
    ``c = (f − f_s) · m / (1 − f_s)``. Only the images' darkest places decide it, not how bright
    the simulation is. None where a bin has no LED."""
    bins = df_bf_bins(real.reshape(len(real), -1).mean(axis=1).astype(np.float64), na, objective_na)
    out: list[float | None] = []
    for rb, f, f_s in zip(bins, dark_floor(real, na, objective_na), dark_floor(sim, na, objective_na), strict=True):
        m = rb["df_bf"]
        out.append((f - f_s) * m / (1.0 - f_s) if m is not None and f is not None and f_s is not None and f_s < 1.0
                   else None)
    return out

def fit_edge_stray(rig: Rig, real: NDArray[np.float32], sim: NDArray[np.float32]
                   ) -> tuple[EdgeStray, list[float | None]]:
    """The objective's stray light at the pupil edge as the real stack shows it: the even light per
    NA bin (:func:`even_light` against ``sim``, the stack simulated without stray light), fitted as
    ``share · exp(−d / falloff_na)`` (d: the bin's mean illumination NA beyond the pupil) over the
    bins where it is positive, in units of each LED's clear brightfield. Returns the fit and the
    per-bin even light; no stray light when fewer than two bins show some."""
    na, obj = led_na(rig), rig.geometry.objective_na
    even = even_light(real, sim, na, obj)
    irradiance = led_irradiance(rig.geometry.leds)
    bright = float(sim[inner_brightfield(na, obj)].mean())
    d, level = [], []
    for (lo, hi), c in zip(NA_BINS, even, strict=True):
        sel = (na >= max(lo, obj)) & (na < hi)
        if c is not None and c > 0 and sel.any():
            d.append(float((na[sel] - obj).mean()))
            level.append(c * bright / float(irradiance[sel].mean()))
    if len(d) < 2:
        return EdgeStray(), even
    slope, intercept = np.polyfit(d, np.log(level), 1)
    if slope >= 0:  # not falling away from the edge: not the stop's stray light
        return EdgeStray(), even
    return EdgeStray(float(min(math.exp(intercept), MAX_EDGE_STRAY)), float(min(-1.0 / slope, 1.0))), even

def with_smear(setup: SimSetup, **changes: Any) -> SimSetup:
    return dataclasses.replace(setup, smear=dataclasses.replace(setup.smear, **changes))
