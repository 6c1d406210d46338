"""A real stack's rig simulated the way the stack was taken (:func:`simulate`): the same field
size, wavelength, defocus and pupil, each LED's irradiance fall-off, the camera pixel's area and
each image clipped where its real counterpart was; and the light returned to the sample from all
directions measured on a real stack (:func:`fit_diffuse_light`)."""

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
from sim.rasterize import Affine, rasterize
from sim.sample import SmearConfig, make_smear
from sim.stack_measures import far_correlation, led_na
from sim.stain import StainStyle, stain_smear

#: Camera pixels of guard band around a simulated field (the FFT optics is periodic).
GUARD_PX = 12
#: :func:`fit_diffuse_light` simulates the returned light once at this level.
DIFFUSE_REF = 1e-3
#: Camera pixels are integrated over this many sub-samples per side.
PIXEL_SUBSAMPLES = 3


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
    #: Per LED, the level below which the real image reads nothing, over its brightfield mean
    #: (:func:`real_floors`); empty: no clipping.
    floors: tuple[float, ...] = ()
    #: Light returned to the sample from all directions: its image's mean over clear brightfield
    #: (:class:`sim.microscope.MicroscopeConfig`; :func:`fit_diffuse_light` measures it).
    diffuse_light: float = 0.0

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
    brightfield mean)."""
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
    return clip_at_floors(out, setup)

def clip_at_floors(images: NDArray[np.float32], setup: SimSetup) -> NDArray[np.float32]:
    """Each image raised to its real counterpart's clip level (``setup.floors``, relative to the
    brightfield mean)."""
    if not setup.floors:
        return images
    bright = images[led_na(setup.rig) < setup.rig.geometry.objective_na].mean()
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

def with_smear(setup: SimSetup, **changes: Any) -> SimSetup:
    return dataclasses.replace(setup, smear=dataclasses.replace(setup.smear, **changes))
