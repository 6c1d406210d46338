"""Fourier-ptychographic recovery of a real LED-array stack: the sample's own complex transmission.

Each LED's image is the object's spectrum seen through the objective pupil, shifted by that LED's
illumination NA. Stitching the shifted windows back together (Zheng, Horstmeyer & Yang 2013,
Nat. Photonics 7:739; the pupil refined on the way as in Ou, Zheng & Yang 2014, Opt. Express
22:4960) recovers amplitude *and* phase at the synthetic NA (illumination + objective, ~0.5 for
the UConn rig: ~0.6 µm instead of the camera's 1.8 µm pixels). That is a measurement of what the
real slide is made of, to calibrate the simulator's materials against: how much the cells absorb,
how much they delay the light, how densely they cover the field and what shape they have
(:func:`measure_field`).

Conventions are the simulator's (:mod:`sim.microscope`): image ``k`` samples the object spectrum
around ``-NA_k / λ``; ``defocus_um`` is how far the field propagates past the sample. The stack
cannot tell an object from its complex conjugate seen with the LED grid turned 180° and the
defocus negated (the two give the same images), so :func:`recover` fits both orientations and
reports the member of the pair whose cells *delay* the light (positive phase: their index exceeds
the medium's), which also settles the sign of the file's defocus and the grid's orientation.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from firmware_bridge.rigs import Rig
from sim.optics import led_irradiance
from sim.realstack import RealStack
from sim.stack_measures import df_bf_bins

Progress = Callable[[int, int], None]
#: ``fine`` (:func:`measure_field`) is the material's structure above this spatial frequency (cycles/µm):
#: detail under ~3 µm, finer than a red cell's outline and profile.
FINE_CYCLES_PER_UM = 0.3
#: A recovery whose other defocus sign fits this much worse or more tells sign and phase well.
RELIABLE_SIGN_MARGIN = 1.25
#: Area range (µm²) of a mask component counted as one separate cell: a red cell is 30–65 µm²
#: (6.2–9.1 µm across); two touching ones are more, platelets and specks less.
SINGLE_CELL_UM2 = (20.0, 70.0)
#: Object-frequency bands of :func:`band_power`, as the illumination NA (f·λ) that tilts each
#: frequency onto the optical axis: an LED at NA θ images the object's frequencies θ ± NA_objective.
BAND_EDGES_NA = (0.0, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5)
#: Rings of :func:`measure_field`'s ``spectrum``: the same measure in steps of 0.0125 NA (0.02 cycles/µm at 630 nm),
#: fine enough to show a peak at the red cells' own scale (~0.07 NA).
SPECTRUM_EDGES_NA = tuple(round(0.0125 * k, 4) for k in range(41))


@dataclass(frozen=True)
class FpmConfig:
    """``iterations`` passes over every LED; the pupil is refined from pass ``pupil_from`` on
    (``None``: never); ``defocus_um`` overrides the stack's own (either sign is tried anyway)."""

    iterations: int = 12
    pupil_from: int | None = 2
    defocus_um: float | None = None

    def __post_init__(self) -> None:
        if not 1 <= self.iterations <= 200:
            raise ValueError(f"FpmConfig.iterations must be in [1, 200], got {self.iterations}")


@dataclass(frozen=True)
class Recovery:
    """The recovered complex transmission (``field``, ``pixel_um`` apart), how it was oriented, the
    fit's residual per pass (sum of squared amplitude errors over all images / their energy), and
    how much of each image's mean light the recovered thin object accounts for."""

    field: NDArray[np.complex64]
    pixel_um: float
    defocus_um: float
    grid_turned: bool
    residuals: tuple[float, ...]
    #: Mean of each LED's image as the object fitted to the other images predicts it (the last pass, just before the
    #: image's own update), over the real one: how much of its light one thin object consistent with the rest of the
    #: stack accounts for. (The final object, fitted to that image too, reproduces more of it.)
    explained: tuple[float, ...] = ()
    #: Residual of the other defocus sign over the kept one's: near 1, the stack hardly tells
    #: the sign of its defocus (close to focus) and says little about slow phase either.
    sign_margin: float = 1.0


def spectrum_offsets(rig: Rig, wavelength_nm: float, shape: tuple[int, int]) -> NDArray[np.int64]:
    """``(N, 2)`` (row, column) of each LED's pupil window in the object spectrum, in frequency
    pixels of a ``shape`` camera image from the spectrum's centre (the simulator's sign)."""
    lam_um = wavelength_nm * 1e-3
    h, w = shape
    px = rig.sample_pixel_um
    leds = rig.geometry.leds
    rows = np.array([-led.na_y / lam_um * h * px for led in leds])
    cols = np.array([-led.na_x / lam_um * w * px for led in leds])
    return np.stack([np.round(rows), np.round(cols)], axis=1).astype(np.int64)


def upsampling(offsets: NDArray[np.int64], shape: tuple[int, int]) -> int:
    """The smallest integer upsampling whose spectrum holds every LED's window."""
    h, w = shape
    need = max((2 * np.abs(offsets[:, 0]).max() + h) / h, (2 * np.abs(offsets[:, 1]).max() + w) / w)
    return max(1, math.ceil(need))


def pupil(shape: tuple[int, int], pixel_um: float, wavelength_nm: float, na: float, defocus_um: float
          ) -> NDArray[np.complex128]:
    """Centred pupil of a ``shape`` image: a disc of radius NA/λ with the defocus phase."""
    lam = wavelength_nm * 1e-3
    fy = (np.arange(shape[0]) - shape[0] // 2) / (shape[0] * pixel_um)
    fx = (np.arange(shape[1]) - shape[1] // 2) / (shape[1] * pixel_um)
    rho2 = fy[:, None] ** 2 + fx[None, :] ** 2
    kz = np.sqrt(np.maximum(1.0 / lam**2 - rho2, 0.0))
    return np.where(rho2 <= (na / lam) ** 2, np.exp(2j * np.pi * defocus_um * kz), 0.0)


def _fit(images: NDArray[np.float64], offsets: NDArray[np.int64], pupil0: NDArray[np.complex128], up: int,
         config: FpmConfig, progress: Progress | None, total: int, done: int
         ) -> tuple[NDArray[np.complex128], tuple[float, ...], NDArray[np.float64]]:
    """Sequential Gauss–Newton updates of the object spectrum (and the pupil): images ``(N, h, w)``
    normalised to a brightfield mean of 1, LEDs in acquisition order (centre first). Returns the
    field, the residual per pass and each image's mean as the last pass predicted it."""
    n, h, w = images.shape
    big = (h * up, w * up)
    scale = 1.0 / up**2  # a window's inverse FFT on the small grid vs the big one
    start = np.kron(np.sqrt(images[0]), np.ones((up, up)))
    spectrum = np.fft.fftshift(np.fft.fft2(start))
    rows = offsets[:, 0] + big[0] // 2 - h // 2
    cols = offsets[:, 1] + big[1] // 2 - w // 2
    support = np.abs(pupil0) > 0
    p = pupil0.copy()
    measured = np.sqrt(np.maximum(images, 0.0))
    energy = float((measured**2).sum())
    residuals = []
    predicted = np.zeros(n)
    for it in range(config.iterations):
        err = 0.0
        for k in range(n):
            win = spectrum[rows[k] : rows[k] + h, cols[k] : cols[k] + w]
            low = win * p
            psi = np.fft.ifft2(np.fft.ifftshift(low)) * scale
            amp = np.abs(psi)
            predicted[k] = float((amp**2).mean())
            err += float(((amp - measured[k]) ** 2).sum())
            fixed = np.fft.fftshift(np.fft.fft2(measured[k] * psi / (amp + 1e-12))) / scale
            diff = fixed - low
            new_win = win + np.conj(p) / (np.abs(p) ** 2).max() * diff
            if config.pupil_from is not None and it >= config.pupil_from:
                p = p + support * np.conj(win) / (np.abs(win) ** 2).max() * diff
            spectrum[rows[k] : rows[k] + h, cols[k] : cols[k] + w] = new_win
        residuals.append(err / energy)
        if progress is not None:
            progress(done + it + 1, total)
    return np.fft.ifft2(np.fft.ifftshift(spectrum)), tuple(residuals), predicted


def recover(stack: RealStack, rig: Rig, config: FpmConfig = FpmConfig(), progress: Progress | None = None
            ) -> Recovery:
    """Recover ``stack``'s complex transmission. Both orientations of the object/defocus pair are
    fitted (module docstring); the better fit is kept, as the member whose cells delay light."""
    leds = rig.geometry.leds
    images = stack.images.astype(np.float64) / led_irradiance(leds)[:, None, None]
    na = np.array([led.na for led in leds])
    objective_na = rig.geometry.objective_na
    bright = na < objective_na
    if not bright.any() or not bright[0]:
        raise ValueError(f"{stack.path}: the first LED must be a brightfield one (acquisition starts at the centre)")
    images = images / images[bright].mean()
    shape = (images.shape[1], images.shape[2])
    offsets = spectrum_offsets(rig, stack.wavelength_nm, shape)
    up = upsampling(offsets, shape)
    defocus = stack.defocus_um if config.defocus_um is None else config.defocus_um
    total = 2 * config.iterations
    fits = []
    for i, d in enumerate((defocus, -defocus)):
        p0 = pupil(shape, rig.sample_pixel_um, stack.wavelength_nm, objective_na, d)
        field, res, predicted = _fit(images, offsets, p0, up, config, progress, total, i * config.iterations)
        fits.append((res[-1], d, field, res, predicted))
    _, d, field, res, predicted = min(fits, key=lambda f: f[0])
    margin = max(f[0] for f in fits) / max(res[-1], 1e-12)
    explained = predicted / images.reshape(len(images), -1).mean(axis=1)
    field = field / np.exp(1j * np.angle(_background(field)))
    turned = False
    if _cell_phase(field, rig.sample_pixel_um / up) < 0.0:  # the conjugate twin: grid turned 180°, defocus negated
        field, d, turned = np.conj(field), -d, True
    return Recovery(field.astype(np.complex64), rig.sample_pixel_um / up, float(d), turned, res,
                    tuple(float(v) for v in explained), float(margin))


def explained_bins(stack: RealStack, rig: Rig, recovery: Recovery) -> list[dict[str, Any]]:
    """Mean darkfield / brightfield per NA bin (:func:`sim.stack_measures.df_bf_bins`), real and as the object
    fitted to the other images predicts it (:attr:`Recovery.explained`): what one thin, coherently lit object
    consistent with the whole stack can account for."""
    means = stack.images.reshape(len(stack.images), -1).mean(axis=1).astype(np.float64)
    na = np.array([led.na for led in rig.geometry.leds])
    objective_na = rig.geometry.objective_na
    real = df_bf_bins(means, na, objective_na)
    fitted = df_bf_bins(means * np.asarray(recovery.explained), na, objective_na)
    return [{"na_lo": r["na_lo"], "na_hi": r["na_hi"], "real_df_bf": r["df_bf"], "recovered_df_bf": f["df_bf"]}
            for r, f in zip(real, fitted, strict=True)]


def _background(field: NDArray[np.complexfloating[Any, Any]]) -> complex:
    """The field's value where nothing is (the brightest quarter of the amplitude, by median)."""
    amp = np.abs(field)
    bg = field[amp >= np.percentile(amp, 75)]
    return complex(np.median(bg.real), np.median(bg.imag))


def _otsu(values: NDArray[np.float64]) -> float:
    hist, edges = np.histogram(values, 256)
    centres = 0.5 * (edges[1:] + edges[:-1])
    w = np.cumsum(hist).astype(np.float64)
    mu = np.cumsum(hist * centres)
    between = (mu[-1] * w / w[-1] - mu) ** 2 / np.maximum(w * (w[-1] - w), 1e-12)
    return float(centres[np.argmax(between)])


def _relative(field: NDArray[np.complexfloating[Any, Any]], pixel_um: float, rounds: int = 3
              ) -> tuple[NDArray[np.complex128], NDArray[np.bool_]]:
    """The field over its local background and the material mask. The mask is where the field
    departs from the background by more than Otsu's threshold; the background is a smooth trend
    (20 µm) through the pixels the mask leaves empty; each refines the other over ``rounds``."""
    f = field / _background(field)
    sigma = max(1.0, 0.5 / pixel_um)
    wide = 20.0 / pixel_um
    # Round 0: over the unmasked trend (cells and gaps mixed), which removes slow phase ramps the
    # recovery leaves near focus; what stays uniform is the background, found as in _background.
    smooth = ndimage.gaussian_filter(f.real, wide) + 1j * ndimage.gaussian_filter(f.imag, wide)
    base = f / smooth
    rel = base = base / _background(base)
    for _ in range(rounds):
        empty = ~ndimage.binary_dilation(_material(rel, sigma), iterations=2)
        den = np.maximum(ndimage.gaussian_filter(empty.astype(np.float64), wide), 1e-6)
        trend = (ndimage.gaussian_filter(np.where(empty, base.real, 0.0), wide)
                 + 1j * ndimage.gaussian_filter(np.where(empty, base.imag, 0.0), wide)) / den
        rel = base / trend
    return rel, _material(rel, sigma)


def _material(rel: NDArray[np.complex128], sigma: float) -> NDArray[np.bool_]:
    """Where ``rel`` departs from 1 by more than Otsu's threshold of the (smoothed) departure,
    its top 2 % clipped first so that a few opaque bodies do not set the threshold."""
    material = ndimage.gaussian_filter(np.abs(rel - 1.0), sigma)
    return material > _otsu(np.minimum(material, np.percentile(material, 98)).ravel())


def _cell_phase(field: NDArray[np.complexfloating[Any, Any]], pixel_um: float) -> float:
    rel, mask = _relative(field, pixel_um)
    return float(np.angle(rel[mask]).mean()) if mask.any() else 0.0


def measure_field(recovery: Recovery, wavelength_nm: float, edge_um: float = 10.0) -> dict[str, Any]:
    """What the recovered field says about the slide (JSON-ready), ``edge_um`` trimmed off each
    side: ``coverage`` (share of the field where material departs from the empty background),
    the material's mean ``od`` (decadic, from its amplitude over the background) and ``phase_rad``
    (over the background; ``opd_nm`` the optical path difference it means), and the shape of the
    separate cells (equivalent ``diameter_um``, ``aspect`` — major over minor axis — and ``od`` of the
    mask's single-cell components, :data:`SINGLE_CELL_UM2`; medians and 10–90 %, the OD's
    coefficient of variation from cell to cell); ``fine``, the
    standard deviation inside the material of the relative field's part above
    :data:`FINE_CYCLES_PER_UM` (the cells' texture, what smooth cells lack), and the same of its
    log-amplitude (``fine_amplitude``: how the bound dye varies) and phase (``fine_phase``: how
    the mass varies) taken apart, as robust spreads (interquartile range / 1.349: a few opaque
    bodies, whose phase the recovery wraps, would set a standard deviation); ``band_power``, the
    field's log-amplitude and phase variance per object-frequency band (:func:`band_power`), and
    ``spectrum``, the same in rings of :data:`SPECTRUM_EDGES_NA`."""
    px = recovery.pixel_um
    trim = round(edge_um / px)
    field = recovery.field[trim:-trim, trim:-trim] if trim else recovery.field
    rel, mask = _relative(field.astype(np.complex128), px)
    core = ndimage.binary_erosion(mask, iterations=1)
    amp = float(np.abs(rel[core]).mean()) if core.any() else 1.0
    phase = float(np.angle(rel[core]).mean()) if core.any() else 0.0
    empty = ~ndimage.binary_dilation(mask, iterations=2)
    fy = np.fft.fftfreq(rel.shape[0], px)[:, None]
    fx = np.fft.fftfreq(rel.shape[1], px)[None, :]
    high = np.hypot(fx, fy) >= FINE_CYCLES_PER_UM

    def fine(values: NDArray[Any]) -> NDArray[Any]:
        return np.fft.ifft2(np.fft.fft2(values - values.mean()) * high)

    log_amplitude = np.log(np.maximum(np.abs(rel), 1e-3))
    fine_rel = fine(rel)
    fine_la, fine_phase = (fine(v).real for v in (log_amplitude, np.angle(rel)))
    return {
        "pixel_um": px, "coverage": float(mask.mean()),
        "od": -2.0 * math.log10(max(amp, 1e-6)), "phase_rad": phase,
        "opd_nm": phase * wavelength_nm / (2.0 * math.pi),
        "background_phase_sd_rad": float(np.angle(rel[empty]).std()) if empty.any() else None,
        "fine": float(np.abs(fine_rel[core]).std()) if core.any() else 0.0,
        "fine_amplitude": _robust_sd(fine_la[core]),
        "fine_phase": _robust_sd(fine_phase[core]),
        "cells": _cell_shapes(mask, px, log_amplitude),
        "band_power": band_power(rel, px, wavelength_nm),
        "spectrum": band_power(rel, px, wavelength_nm, SPECTRUM_EDGES_NA),
    }


def _robust_sd(values: NDArray[np.float64]) -> float:
    """The standard deviation a normal distribution with ``values``' interquartile range has (0 if empty)."""
    if not values.size:
        return 0.0
    q1, q3 = np.percentile(values, [25.0, 75.0])
    return float((q3 - q1) / 1.349)


def band_power(rel: NDArray[np.complexfloating[Any, Any]], pixel_um: float, wavelength_nm: float,
               edges_na: tuple[float, ...] = BAND_EDGES_NA) -> dict[str, list[float]]:
    """How much the relative field's log-amplitude and phase vary within each object-frequency
    band: the band's share of each map's variance (Parseval: the bands of a map sum to its
    variance over the frequencies they cover; a cosine of amplitude ``a`` puts ``a²/2`` in its
    band), and how the two vary together there (``correlation``: their cross-power's real part
    over the geometric mean of the two powers — −1 where absorption and delay follow one outline,
    as in a cell that absorbs and delays, 0 where they vary independently). Edges are in NA (f·λ,
    :data:`BAND_EDGES_NA`), so band by band this says which of the object's structure a darkfield
    LED at that NA sees."""
    h, w = rel.shape
    freq = np.hypot(np.fft.fftfreq(h, pixel_um)[:, None], np.fft.fftfreq(w, pixel_um)[None, :])
    band = np.digitize(freq * wavelength_nm * 1e-3, edges_na) - 1
    inside = (band >= 0) & (band < len(edges_na) - 1)
    n = len(edges_na) - 1

    def spectrum(values: NDArray[np.float64]) -> NDArray[np.complex128]:
        return np.fft.fft2(values - values.mean()) / float(values.size)

    def per_band(power: NDArray[np.float64]) -> NDArray[np.float64]:
        return np.bincount(band[inside], power[inside], minlength=n).astype(np.float64)

    la, ph = spectrum(np.log(np.maximum(np.abs(rel), 1e-3))), spectrum(np.angle(rel))
    p_la, p_ph = per_band(np.abs(la) ** 2), per_band(np.abs(ph) ** 2)
    cross = per_band((la * np.conj(ph)).real)
    corr = np.divide(cross, np.sqrt(p_la * p_ph), out=np.zeros(n), where=p_la * p_ph > 0)
    return {"na_edges": list(edges_na), "log_amplitude": p_la.tolist(), "phase": p_ph.tolist(),
            "correlation": corr.tolist()}


def _cell_shapes(mask: NDArray[np.bool_], pixel_um: float, log_amplitude: NDArray[np.float64]) -> dict[str, Any]:
    """Equivalent diameter, aspect ratio (from second moments) and optical density (mean over the
    cell; its median and coefficient of variation from cell to cell) of the mask's separate cells:
    components of SINGLE_CELL_UM2 area (touching cells and specks left out), not cut by the border."""
    filled = ndimage.binary_fill_holes(ndimage.binary_opening(mask))
    labels, _ = ndimage.label(filled)
    n = int(labels.max()) + 1
    yy, xx = np.indices(labels.shape, dtype=np.float64)
    flat = labels.ravel()

    def total(w: NDArray[np.float64] | None = None) -> NDArray[np.float64]:
        return np.bincount(flat, None if w is None else w.ravel(), minlength=n).astype(np.float64)

    area = total()
    with np.errstate(invalid="ignore", divide="ignore"):
        my, mx = total(yy) / area, total(xx) / area
        vy, vx = total(yy * yy) / area - my**2, total(xx * xx) / area - mx**2
        cxy = total(xx * yy) / area - mx * my
        half = np.sqrt(((vx - vy) / 2.0) ** 2 + cxy**2)
        aspect = np.sqrt((0.5 * (vx + vy) + half) / np.maximum(0.5 * (vx + vy) - half, 1e-9))
    border = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    um2 = area * pixel_um**2
    keep = (um2 >= SINGLE_CELL_UM2[0]) & (um2 <= SINGLE_CELL_UM2[1])
    keep[0] = False
    keep[border] = False
    if not keep.any():
        return {"count": 0}
    diam = 2.0 * np.sqrt(area[keep] / math.pi) * pixel_um
    asp = aspect[keep]
    od = -2.0 / math.log(10.0) * total(log_amplitude)[keep] / area[keep]
    return {"count": int(keep.sum()),
            "od": {"median": float(np.median(od)), "cv": float(od.std() / max(abs(od.mean()), 1e-9))},
            "diameter_um": {"median": float(np.median(diam)), "p10": float(np.percentile(diam, 10)),
                            "p90": float(np.percentile(diam, 90))},
            "aspect": {"median": float(np.median(asp)), "p90": float(np.percentile(asp, 90))}}


def write_recovery_png(recovery: Recovery, path: str | Path) -> Path:
    """Amplitude, phase (both over the background, stretched to their 1–99th percentile) and the
    material mask side by side."""
    rel, mask = _relative(recovery.field.astype(np.complex128), recovery.pixel_um)

    def stretch(x: NDArray[np.float64]) -> NDArray[np.uint8]:
        lo, hi = np.percentile(x, [1, 99])
        return np.clip((x - lo) / max(hi - lo, 1e-12) * 255.0, 0, 255).astype(np.uint8)

    panels = [stretch(np.abs(rel)), stretch(np.angle(rel)), (mask * 255).astype(np.uint8)]
    out = Path(path)
    if not cv2.imwrite(str(out), np.hstack(panels)):
        raise OSError(f"cannot write {out}")
    return out
