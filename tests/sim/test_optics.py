"""Physics of the LED-array forward model on objects whose images are known analytically."""

from __future__ import annotations

import numpy as np
import pytest

from sim.optics import Objective, led_intensities, object_spectrum

PIX = 0.25  # µm, fine grid
OS = 2
N = 64  # camera-grid size
LAM = 500.0  # nm
OBJ = Objective(na=0.4, magnification=20.0)
CUTOFF = OBJ.na / (LAM * 1e-3)  # µm⁻¹


def _coords() -> tuple[np.ndarray, np.ndarray]:
    y, x = np.mgrid[0 : N * OS, 0 : N * OS] * PIX
    return x, y


def _phase_disc(radius_um: float = 2.0, phase: float = 1.5) -> np.ndarray:
    x, y = _coords()
    c = N * OS * PIX / 2
    inside = np.hypot(x - c, y - c) < radius_um
    return np.exp(1j * phase * inside).astype(np.complex64)


def _render(t: np.ndarray, na_xy: list[tuple[float, float]], wl: float = LAM) -> np.ndarray:
    return led_intensities(object_spectrum(t), PIX, OS, wl, na_xy, OBJ)


def test_clear_sample_is_bright_inside_and_dark_outside_the_objective_na() -> None:
    clear = np.ones((N * OS, N * OS), np.complex64)
    images = _render(clear, [(0.0, 0.0), (0.25, 0.1), (0.5, 0.0), (0.0, -0.8)])
    np.testing.assert_allclose(images[0], 1.0, atol=1e-5)
    np.testing.assert_allclose(images[1], 1.0, atol=1e-5)
    np.testing.assert_allclose(images[2], 0.0, atol=1e-8)
    np.testing.assert_allclose(images[3], 0.0, atol=1e-8)


@pytest.mark.parametrize("eps", [1e-4, 1e-3])
def test_brightfield_darkfield_boundary_is_exactly_the_objective_na(eps: float) -> None:
    disc = _phase_disc()
    inside, outside = _render(disc, [(OBJ.na - eps, 0.0), (OBJ.na + eps, 0.0)])
    corner = (slice(0, 8), slice(0, 8))  # background, far from the disc
    assert inside[corner].mean() > 0.8
    assert outside[corner].mean() < 1e-3


def test_darkfield_shows_bright_scatterers_on_a_dark_background() -> None:
    images = _render(_phase_disc(), [(0.0, 0.0), (0.0, 0.6)])
    bf, df = images
    disc_edge = df[N // 2 - 10 : N // 2 + 10, N // 2 - 10 : N // 2 + 10]
    assert df[:8, :8].mean() < 1e-3 < disc_edge.max()
    assert disc_edge.max() > 50 * df[:8, :8].mean()
    assert bf[:8, :8].mean() > 0.9


def _grating(freq_um: float) -> np.ndarray:
    x, _ = _coords()
    return (1.0 + 0.2 * np.exp(2j * np.pi * freq_um * x)).astype(np.complex64)  # one order only: +g


def _modulation(image: np.ndarray) -> float:
    row = image.mean(axis=0)
    return float(row.max() - row.min())


def test_tilted_led_shifts_the_spectrum_by_k() -> None:
    # A grating above the cut-off is invisible on axis; an LED tilted by k brings the +g order
    # to |g + k| inside the pupil only when k points against g.
    df = 1.0 / (N * OS * PIX)
    g = round(1.2 * CUTOFF / df) * df  # exactly periodic on the grid
    lam = LAM * 1e-3
    on_axis, towards, against = _render(_grating(g), [(0, 0), (0.5 * OBJ.na, 0), (-0.5 * OBJ.na, 0)])
    assert _modulation(on_axis) < 1e-6
    assert _modulation(towards) < 1e-6
    assert _modulation(against) > 0.05
    # Sub-sample exactness: put |g + k| a hair inside / outside the cut-off.
    k_in = (CUTOFF - g) - 0.01 * df
    k_out = (CUTOFF - g) + 0.01 * df
    img_in, img_out = _render(_grating(g), [(k_in * lam, 0), (k_out * lam, 0)])
    assert _modulation(img_in) > 0.05
    assert _modulation(img_out) < 1e-6


def test_intensity_is_conserved_for_a_pure_phase_object_under_full_transfer() -> None:
    # With an objective NA near 1 and a weak, smooth phase object, nothing leaves the pupil.
    wide = Objective(na=0.95, magnification=20.0)
    x, _ = _coords()
    t = np.exp(1j * 0.3 * np.sin(2 * np.pi * x / 8.0)).astype(np.complex64)
    img = led_intensities(object_spectrum(t), PIX, OS, LAM, [(0.0, 0.0)], wide)[0]
    np.testing.assert_allclose(img.mean(), 1.0, rtol=1e-4)


def test_defocus_turns_phase_into_intensity_contrast() -> None:
    disc = _phase_disc(phase=0.3)
    focused = _render(disc, [(0.0, 0.0)])[0]
    blurred = led_intensities(object_spectrum(disc), PIX, OS, LAM, [(0.0, 0.0)],
                              Objective(0.4, 20.0, defocus_um=3.0))[0]
    assert blurred.std() > 1.5 * focused.std()


def test_object_shift_moves_the_image() -> None:
    disc = _phase_disc()
    spec = object_spectrum(disc)
    plain = led_intensities(spec, PIX, OS, LAM, [(0.0, 0.6)], OBJ)[0]
    moved = led_intensities(spec, PIX, OS, LAM, [(0.0, 0.6)], OBJ, object_shift_um=(4 * PIX * OS, 0.0))[0]
    np.testing.assert_allclose(np.roll(plain, 4, axis=1), moved, atol=1e-4)


def test_impossible_objective_is_refused() -> None:
    with pytest.raises(ValueError, match="NA"):
        Objective(na=1.2, magnification=20.0)
