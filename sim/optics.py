"""The thin-object LED-array forward model.

An LED far from the sample lights it with a tilted plane wave ``exp(i2π k·r)``,
``k = (na_x, na_y) / λ``. The objective passes spatial frequencies inside its pupil of radius
``NA_obj / λ`` and the camera records intensity. For a sample of complex transmission ``t``:

    I_k(r) = | IFFT[ T(f) · P(f + k) ](r) |²

where ``T = FFT(t)`` and ``P`` is the pupil (the tilt only shifts where the pupil sits on the
object spectrum; the remaining phase ramp vanishes in the modulus). ``k`` is never rounded: the
pupil is evaluated at its exact position on the sampled spectrum, so the spectrum shift is exact
and an LED is darkfield exactly when the unscattered wave (``f = 0``) falls outside the pupil,
i.e. when ``NA_ill >= NA_obj``.

The object is sampled on a grid ``oversample`` times finer than the camera's, so the spectrum holds
the high frequencies that oblique LEDs scatter into the pupil; each image is computed on the camera
grid directly from a window of that spectrum (one small inverse FFT per LED and wavelength).
Each LED is a quasi-monochromatic point source (spectral width and LED size are not modelled).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.fft as sfft
from numpy.typing import NDArray

from firmware_bridge.geometry import Led

#: Inverse FFTs are done in batches of this many LEDs (bounds memory on large fields).
LED_BATCH = 8


@dataclass(frozen=True)
class Objective:
    """Microscope objective: NA, magnification, immersion index, defocus (µm) and aberrations.

    ``spherical_waves`` is the primary spherical aberration (Zernike Z(4,0)) in waves at the pupil
    edge; ``defocus_um`` moves the sample along the axis (angular-spectrum propagation).
    """

    na: float
    magnification: float
    immersion_n: float = 1.0
    defocus_um: float = 0.0
    spherical_waves: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 < self.na < self.immersion_n:
            raise ValueError(
                f"objective NA {self.na} must be in (0, immersion index {self.immersion_n}); "
                "a dry objective has NA < 1"
            )
        if self.magnification <= 0:
            raise ValueError(f"objective magnification {self.magnification} must be > 0")


def object_spectrum(transmission: NDArray[np.complex64]) -> NDArray[np.complex64]:
    """FFT of the complex transmission ``(H, W)`` (numpy ordering, unnormalised)."""
    return sfft.fft2(transmission.astype(np.complex64, copy=False), workers=-1)


def _pupil(
    fx: NDArray[np.float64],
    fy: NDArray[np.float64],
    objective: Objective,
    wavelength_um: float,
) -> NDArray[np.complex64]:
    """Pupil function at absolute spatial frequencies (µm⁻¹): a hard disc with optional phase."""
    cutoff = objective.na / wavelength_um
    rho2 = (fx * fx + fy * fy) / (cutoff * cutoff)
    inside = rho2 < 1.0
    pupil = inside.astype(np.complex64)
    phase = np.zeros_like(rho2)
    if objective.defocus_um:
        kz = np.sqrt(np.maximum((objective.immersion_n / wavelength_um) ** 2 - fx * fx - fy * fy, 0.0))
        phase += 2.0 * np.pi * objective.defocus_um * (kz - objective.immersion_n / wavelength_um)
    if objective.spherical_waves:
        phase += 2.0 * np.pi * objective.spherical_waves * (6 * rho2 * rho2 - 6 * rho2 + 1)
    if objective.defocus_um or objective.spherical_waves:
        pupil *= np.exp(1j * phase).astype(np.complex64)
    return pupil


def led_intensities(
    spectrum: NDArray[np.complex64],
    fine_pixel_um: float,
    oversample: int,
    wavelength_nm: float,
    illumination_na: Sequence[tuple[float, float]] | NDArray[np.float64],
    objective: Objective,
    object_shift_um: tuple[float, float] = (0.0, 0.0),
) -> NDArray[np.float32]:
    """Intensity images ``(L, H, W)`` on the camera grid, one per illumination direction.

    ``spectrum`` is :func:`object_spectrum` of a transmission sampled at ``fine_pixel_um`` with
    shape ``(H·oversample, W·oversample)``; ``illumination_na`` holds ``(na_x, na_y)`` per LED.
    Intensities are relative to the incident plane wave (a clear sample under a brightfield LED
    gives 1.0). ``object_shift_um`` (x, y) shifts the sample (used to misalign one image).
    """
    hf, wf = spectrum.shape
    if hf % oversample or wf % oversample:
        raise ValueError(f"spectrum shape {spectrum.shape} is not a multiple of oversample={oversample}")
    h, w = hf // oversample, wf // oversample
    lam = wavelength_nm * 1e-3
    dfy, dfx = 1.0 / (hf * fine_pixel_um), 1.0 / (wf * fine_pixel_um)
    # Only a box around the pupil is non-zero: offsets (samples) from the window centre.
    cutoff = objective.na / lam
    my = np.arange(-min(h // 2, int(cutoff / dfy) + 2), min((h + 1) // 2, int(cutoff / dfy) + 3))
    mx = np.arange(-min(w // 2, int(cutoff / dfx) + 2), min((w + 1) // 2, int(cutoff / dfx) + 3))
    na = np.asarray(illumination_na, dtype=np.float64).reshape(-1, 2)
    out = np.empty((len(na), h, w), np.float32)
    norm = np.float32(1.0 / oversample**4)  # |field|² of a clear sample -> 1
    for start in range(0, len(na), LED_BATCH):
        k = na[start : start + LED_BATCH] / lam  # (B, 2) spatial frequency of each LED, µm⁻¹
        cy = np.round(-k[:, 1] / dfy).astype(np.int64)  # window centres: integers, the pupil stays exact
        cx = np.round(-k[:, 0] / dfx).astype(np.int64)
        iy, ix = cy[:, None] + my[None, :], cx[:, None] + mx[None, :]  # (B, by), (B, bx)
        fy, fx = (iy * dfy)[:, :, None], (ix * dfx)[:, None, :]
        box = spectrum[(iy % hf)[:, :, None], (ix % wf)[:, None, :]]
        box *= _pupil(fx + k[:, 0, None, None], fy + k[:, 1, None, None], objective, lam)
        if object_shift_um != (0.0, 0.0):
            sx, sy = object_shift_um
            box *= np.exp(-2j * np.pi * (fx * sx + fy * sy)).astype(np.complex64)
        windows = np.zeros((len(k), h, w), np.complex64)
        windows[:, (my % h)[:, None], (mx % w)[None, :]] = box
        fields = sfft.ifft2(windows, axes=(-2, -1), workers=-1, overwrite_x=True)
        out[start : start + len(k)] = (fields.real**2 + fields.imag**2) * norm
    return out


def relative_irradiance(x_mm: float, y_mm: float, z_mm: float, reference_mm: float) -> float:
    """Irradiance at the field centre from a Lambertian LED pointing along +z, relative to an
    on-axis LED at ``reference_mm``: cos θ (emission) · cos θ (incidence) / r², normalised."""
    r2 = x_mm * x_mm + y_mm * y_mm + z_mm * z_mm
    cos_t = z_mm / np.sqrt(r2)
    return float(cos_t * cos_t * reference_mm * reference_mm / r2)


def led_irradiance(leds: Sequence[Led]) -> NDArray[np.float64]:
    """:func:`relative_irradiance` of every LED, relative to the nearest one."""
    ref = min(led.distance_mm for led in leds)
    return np.array([relative_irradiance(led.x_mm, led.y_mm, led.z_mm, ref) for led in leds])
