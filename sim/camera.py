"""The camera: photons → electrons (shot noise) → read noise → gain → ADU, clipped at the bit depth.

Per colour channel c, a pixel under relative intensity ``I`` (1.0 = clear brightfield) collects
``photons_per_ms · E · I · t`` photons in an exposure of ``t`` ms, where ``E`` is the irradiance of
the lit LEDs relative to an on-axis LED (:func:`sim.optics.relative_irradiance`). Electrons are
Poisson(QE_c · photons); the read noise is Gaussian with ``read_noise_e`` electrons rms; the
analogue gain multiplies electrons before digitisation; one ADU is ``full_well_e / (2^bits − 1)``
electrons at unity gain, so a full well saturates the ADC. Bayer mosaicking is not modelled: each
colour channel is a full-resolution plane.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from core.camera import Exposure

#: Above this many expected electrons the Poisson draw uses its normal approximation
#: (indistinguishable at these counts, ~6x faster).
_POISSON_NORMAL_ABOVE = 200.0


@dataclass(frozen=True)
class SensorConfig:
    """A machine-vision sensor behind the 20x objective (defaults: a 1/1.2" global-shutter sensor
    with 5.86 µm pixels, 12-bit readout)."""

    pixel_um: float = 5.86
    bit_depth: int = 12
    full_well_e: float = 32_000.0
    read_noise_e: float = 6.0
    black_level_adu: int = 16
    qe: dict[str, float] = field(default_factory=lambda: {"r": 0.55, "g": 0.70, "b": 0.60})
    photons_per_ms: float = 20_000.0
    max_exposure_ms: float = 2_000.0

    def __post_init__(self) -> None:
        checks = {
            "pixel_um": self.pixel_um > 0,
            "bit_depth": 8 <= self.bit_depth <= 16,
            "full_well_e": self.full_well_e > 0,
            "read_noise_e": self.read_noise_e >= 0,
            "photons_per_ms": self.photons_per_ms > 0,
            "max_exposure_ms": self.max_exposure_ms > 0,
            "black_level_adu": 0 <= self.black_level_adu < 2**self.bit_depth // 4,
            "qe": bool(self.qe) and all(0 < q <= 1 for q in self.qe.values()),
        }
        bad = [k for k, ok in checks.items() if not ok]
        if bad:
            raise ValueError(
                f"camera config: invalid {', '.join(bad)} (pixel_um > 0, 8 <= bit_depth <= 16, "
                "full_well_e > 0, read_noise_e >= 0, 0 < qe <= 1, exposure/photons > 0)"
            )

    @property
    def max_adu(self) -> int:
        return int(2**self.bit_depth - 1)

    @property
    def electrons_per_adu(self) -> float:
        """Conversion at unity gain: a full well maps to the top of the ADC range."""
        return self.full_well_e / (self.max_adu - self.black_level_adu)


def expected_electrons(
    intensity: NDArray[np.float32],
    irradiance: float,
    exposure: Exposure,
    camera: SensorConfig,
    channels: tuple[str, ...],
) -> NDArray[np.float32]:
    """Noise-free electrons ``(C, H, W)`` for relative intensities ``(C, H, W)``."""
    qe = np.array([camera.qe.get(c, 0.6) for c in channels], np.float32)[:, None, None]
    scale = np.float32(camera.photons_per_ms * irradiance * exposure.exposure_ms)
    return intensity * (qe * scale)


def expose(
    intensity: NDArray[np.float32],
    irradiance: float,
    exposure: Exposure,
    camera: SensorConfig,
    channels: tuple[str, ...],
    rng: np.random.Generator,
) -> NDArray[np.uint16]:
    """One noisy raw frame ``(C, H, W)`` uint16 from relative intensities ``(C, H, W)``."""
    mean_e = expected_electrons(intensity, irradiance, exposure, camera, channels)
    return digitise(mean_e, np.float32(exposure.gain), camera, rng)


def digitise(
    mean_e: NDArray[np.float32],
    gain: NDArray[np.float32] | np.float32,
    camera: SensorConfig,
    rng: np.random.Generator,
) -> NDArray[np.uint16]:
    """Raw ADU (any shape) from expected electrons: shot noise, read noise, gain, black level,
    rounding and clipping. ``gain`` broadcasts against ``mean_e`` (e.g. ``(N, 1, 1, 1)``)."""
    electrons = sensor_noise(mean_e, camera.read_noise_e, rng)
    electrons *= np.asarray(gain, np.float32) / np.float32(camera.electrons_per_adu)
    electrons += np.float32(camera.black_level_adu)
    np.rint(electrons, out=electrons)
    np.clip(electrons, 0, camera.max_adu, out=electrons)
    return electrons.astype(np.uint16)


def sensor_noise(mean_e: NDArray[np.float32], read_noise_e: float, rng: np.random.Generator) -> NDArray[np.float32]:
    """Electrons read out: Poisson(mean) + Normal(0, read_noise²). Above ``_POISSON_NORMAL_ABOVE``
    expected electrons the Poisson term is normal too, and both are drawn as one normal of variance
    ``mean + read_noise²`` (exact for a sum of independent normals)."""
    out = np.empty_like(mean_e, dtype=np.float32)
    low = mean_e < _POISSON_NORMAL_ABOVE
    high = ~low
    m = mean_e[high]
    out[high] = m + rng.standard_normal(m.shape, dtype=np.float32) * np.sqrt(m + np.float32(read_noise_e**2))
    m = mean_e[low]
    shot = rng.poisson(m).astype(np.float32)
    if read_noise_e:
        shot += rng.standard_normal(m.shape, dtype=np.float32) * np.float32(read_noise_e)
    out[low] = shot
    return out


def exposure_for(
    level: float,
    target_fraction: float,
    irradiance: float,
    camera: SensorConfig,
    channels: tuple[str, ...],
) -> Exposure:
    """Settings that put a relative intensity ``level`` at ``target_fraction`` of full scale in the
    most sensitive channel; beyond ``max_exposure_ms`` the rest comes from analogue gain."""
    qe = max(camera.qe.get(c, 0.6) for c in channels)
    electrons_per_ms = camera.photons_per_ms * irradiance * qe * max(level, 1e-9)
    needed_ms = target_fraction * camera.full_well_e / electrons_per_ms
    if needed_ms <= camera.max_exposure_ms:
        return Exposure(float(needed_ms), 1.0)
    return Exposure(camera.max_exposure_ms, float(needed_ms / camera.max_exposure_ms))
