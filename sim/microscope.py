"""The virtual microscope: an LED array, an objective and a camera imaging :class:`SampleMaps`.

``Microscope.prepare(maps)`` computes the object spectra of a field once (one FFT per wavelength);
the prepared field then renders any LED, any set of LEDs lit together, or a whole recipe stack.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from core.camera import Exposure
from firmware_bridge.geometry import ArrayGeometry
from firmware_bridge.recipes import StackRecipe
from sim.camera import SensorConfig, digitise, expected_electrons, expose, exposure_for
from sim.maps import SampleMaps
from sim.optics import Objective, led_intensities, led_irradiance, object_spectrum

#: Darkfield "high" exposures are this many times the "low" ones (seed 000: high burns pixels).
HIGH_EXPOSURE_FACTOR = 5.0
#: Calibration puts this percentile of a reference field at ``TARGET_FRACTION`` of full scale.
CALIBRATION_PERCENTILE = 99.5
TARGET_FRACTION = 0.7
#: Camera noise is drawn for at most this many pixel values at a time (memory bound).
NOISE_CHUNK = 1 << 23
#: Stained re-scans and 100x images are white-balanced with the clear background at this level.
WHITE_LEVEL = 0.8


@dataclass(frozen=True)
class MicroscopeConfig:
    """Optics settings beyond the geometry: object oversampling, focus, aberration, medium."""

    oversample: int = 2
    defocus_um: float = 0.0
    spherical_waves: float = 0.0
    medium_n: float = 1.0
    camera: SensorConfig = field(default_factory=SensorConfig)

    def __post_init__(self) -> None:
        if self.oversample < 1:
            raise ValueError(f"oversample must be >= 1, got {self.oversample}")
        if not 1.0 <= self.medium_n < 2.0:
            raise ValueError(f"medium_n must be in [1, 2), got {self.medium_n}")


class Microscope:
    """An LED-array microscope: ``geometry`` (LEDs + objective) and ``config`` (camera, focus)."""

    def __init__(self, geometry: ArrayGeometry, config: MicroscopeConfig | None = None,
                 *, objective: Objective | None = None) -> None:
        """``objective`` replaces the geometry's (e.g. a 100x / 1.25 oil objective with a
        condenser instead of the LED array, for the high-resolution truth)."""
        self.geometry = geometry
        self.config = config or MicroscopeConfig()
        self.objective = objective or Objective(
            geometry.objective_na, geometry.objective_magnification, 1.0,
            self.config.defocus_um, self.config.spherical_waves,
        )
        self.channels = geometry.channels
        self.wavelengths_nm = tuple(geometry.wavelengths_nm[c] for c in self.channels)
        self.pixel_um = self.config.camera.pixel_um / self.objective.magnification
        self.fine_pixel_um = self.pixel_um / self.config.oversample
        self.irradiance = led_irradiance(geometry.leds)

    def fine_shape(self, shape: tuple[int, int]) -> tuple[int, int]:
        """Object-grid shape for a camera image of ``shape`` (rows, cols)."""
        return (shape[0] * self.config.oversample, shape[1] * self.config.oversample)

    def prepare(self, maps: SampleMaps) -> PreparedField:
        if not math.isclose(maps.pixel_um, self.fine_pixel_um, rel_tol=1e-6):
            raise ValueError(
                f"sample maps have {maps.pixel_um:.5f} µm pixels; this microscope needs "
                f"{self.fine_pixel_um:.5f} µm (camera pixel / magnification / oversample)"
            )
        os_ = self.config.oversample
        if maps.shape[0] % os_ or maps.shape[1] % os_:
            raise ValueError(f"sample map shape {maps.shape} is not a multiple of oversample {os_}")
        spectra = [object_spectrum(maps.transmission(w, self.config.medium_n)) for w in self.wavelengths_nm]
        return PreparedField(self, spectra)

    # -- camera settings ------------------------------------------------------------------
    def calibrate(self, reference: PreparedField, recipe: StackRecipe) -> tuple[Exposure, ...]:
        """Per-channel settings from a reference field, the way the seed chose them by hand: the
        bright tail of the histogram just below saturation; darkfield "high" 5x the "low"."""
        cam = self.config.camera
        leds = _union_leds(recipe, self.geometry)
        images = dict(zip(leds, reference.intensities(leds), strict=True))
        settings: list[Exposure] = []
        for ch in recipe.channels:
            lit = self.geometry.brightfield_indices if ch.led is None else (ch.led,)
            intensity, irr = self._combine(images, lit)
            level = float(np.percentile(intensity.max(axis=0), CALIBRATION_PERCENTILE)) / irr
            exp = exposure_for(level, TARGET_FRACTION, irr, cam, self.channels)
            if ch.exposure == "high":
                exp = Exposure(exp.exposure_ms * HIGH_EXPOSURE_FACTOR, exp.gain)
            settings.append(exp)
        return tuple(settings)

    def _combine(self, images: dict[int, NDArray[np.float32]],
                 lit: Sequence[int]) -> tuple[NDArray[np.float32], float]:
        """Irradiance-weighted sum of single-LED images ``(C, H, W)`` and the total irradiance."""
        total = float(sum(self.irradiance[i] for i in lit))
        acc = sum((images[i] * np.float32(self.irradiance[i]) for i in lit), np.float32(0))
        return np.asarray(acc, np.float32), total


def _union_leds(recipe: StackRecipe, geometry: ArrayGeometry) -> list[int]:
    bf = geometry.brightfield_indices if any(c.led is None for c in recipe.channels) else ()
    return sorted(set(bf) | set(recipe.leds))


class PreparedField:
    """A field whose object spectra are computed; renders intensities and camera frames."""

    def __init__(self, microscope: Microscope, spectra: list[NDArray[np.complex64]]) -> None:
        self.microscope = microscope
        self._spectra = spectra

    @property
    def shape(self) -> tuple[int, int]:
        os_ = self.microscope.config.oversample
        h, w = self._spectra[0].shape
        return (h // os_, w // os_)

    def intensities(self, leds: Sequence[int], shift_um: tuple[float, float] = (0.0, 0.0)) -> NDArray[np.float32]:
        """Relative intensity ``(L, C, H, W)`` of each LED alone (1.0 = clear brightfield)."""
        m = self.microscope
        na = [(m.geometry.led(i).na_x, m.geometry.led(i).na_y) for i in leds]
        out = np.empty((len(leds), len(m.channels), *self.shape), np.float32)
        for c, (spectrum, wl) in enumerate(zip(self._spectra, m.wavelengths_nm, strict=True)):
            out[:, c] = led_intensities(spectrum, m.fine_pixel_um, m.config.oversample, wl, na,
                                        m.objective, shift_um)
        return out

    def lit_intensity(self, leds: Sequence[int], brightness: dict[str, float] | None = None
                      ) -> tuple[NDArray[np.float32], float]:
        """Relative intensity ``(C, H, W)`` with ``leds`` lit together (per-channel brightness 0..1),
        normalised by the total irradiance returned alongside."""
        m = self.microscope
        if not leds:
            return np.zeros((len(m.channels), *self.shape), np.float32), 1.0
        images = dict(zip(leds, self.intensities(leds), strict=True))
        intensity, irr = m._combine(images, leds)
        if brightness is not None:
            intensity *= np.array([brightness.get(c, 0.0) for c in m.channels], np.float32)[:, None, None]
        return intensity / np.float32(irr), irr

    def render_stack(self, recipe: StackRecipe, exposures: Sequence[Exposure], rng: np.random.Generator,
                     *, bf_shift_um: tuple[float, float] = (0.0, 0.0)) -> NDArray[np.uint16]:
        """Raw frames ``(N, C, H, W)`` uint16 of a recipe; the brightfield image may be shifted
        against the PLS images by ``bf_shift_um`` (x, y) to model stage slip between captures."""
        m = self.microscope
        if len(exposures) != len(recipe.channels):
            raise ValueError(f"{len(exposures)} exposures for {len(recipe.channels)} channels")
        leds = _union_leds(recipe, m.geometry)
        images = dict(zip(leds, self.intensities(leds), strict=True))
        if bf_shift_um != (0.0, 0.0):
            bf = m.geometry.brightfield_indices
            shifted = dict(zip(bf, self.intensities(bf, bf_shift_um), strict=True))
        else:
            shifted = images
        cam, n_img = m.config.camera, len(recipe.channels)
        out = np.empty((n_img, len(m.channels), *self.shape), np.uint16)
        step = max(1, NOISE_CHUNK // out[0].size)  # bounds the noise temporaries on large fields
        for start in range(0, n_img, step):
            stop = min(n_img, start + step)
            mean_e = np.empty((stop - start, *out.shape[1:]), np.float32)
            for n in range(start, stop):
                ch, exp = recipe.channels[n], exposures[n]
                if ch.led is None:
                    intensity, irr = m._combine(shifted, m.geometry.brightfield_indices)
                    intensity /= np.float32(irr)
                else:
                    intensity, irr = images[ch.led], float(m.irradiance[ch.led])
                mean_e[n - start] = expected_electrons(intensity, irr, exp, cam, m.channels)
            gains = np.array([e.gain for e in exposures[start:stop]], np.float32)[:, None, None, None]
            out[start:stop] = digitise(mean_e, gains, cam, rng)
        return out

    def render_brightfield_rgb(self, rng: np.random.Generator, illumination_na: Sequence[tuple[float, float]]
                               | None = None) -> NDArray[np.uint16]:
        """A white-balanced brightfield frame ``(C, H, W)`` (clear background at 80 % of full
        scale in every channel): the stained re-scan and the 100x image. ``illumination_na``
        replaces the LED array by a condenser's set of plane waves (equal weights)."""
        m = self.microscope
        cam = m.config.camera
        if illumination_na is None:
            intensity, irr = self.lit_intensity(m.geometry.brightfield_indices)
        else:
            na = list(illumination_na)
            per = np.empty((len(na), len(m.channels), *self.shape), np.float32)
            for c, (spectrum, wl) in enumerate(zip(self._spectra, m.wavelengths_nm, strict=True)):
                per[:, c] = led_intensities(spectrum, m.fine_pixel_um, m.config.oversample, wl, na, m.objective)
            intensity, irr = per.mean(axis=0), 1.0
        exp = exposure_for(1.0, WHITE_LEVEL, irr, cam, m.channels)
        qe = np.array([cam.qe.get(c, 0.6) for c in m.channels], np.float32)
        balance = (qe.max() / qe)[:, None, None]  # equalise per-channel sensitivity before the ADC
        return expose(intensity * balance, irr, exp, cam, m.channels, rng)


def condenser_na(na: float, rings: int = 4) -> list[tuple[float, float]]:
    """Plane-wave directions filling a condenser aperture of ``na`` (Köhler illumination):
    the centre plus ``rings`` rings of 6·k directions."""
    dirs = [(0.0, 0.0)]
    for k in range(1, rings + 1):
        r = na * k / rings * 0.999
        dirs += [(r * math.cos(2 * math.pi * j / (6 * k)), r * math.sin(2 * math.pi * j / (6 * k)))
                 for j in range(6 * k)]
    return dirs
