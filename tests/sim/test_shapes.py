"""Tests of sim/shapes.py."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sim.shapes import Blob, Capsule, Profile, Spheres, inside, outline_thickness


def _grid(half: float, step: float) -> tuple[np.ndarray, np.ndarray]:
    c = np.arange(-half + step / 2, half, step, dtype=np.float32)
    return c[None, :], c[:, None]


def test_biconcave_profile_hits_centre_and_rim() -> None:
    p = Profile("biconcave", 1.4, 0.6)
    u = np.linspace(0.0, 1.0, 2001)
    t = p.shape_values(u)
    assert t[0] == pytest.approx(0.6, rel=0.01)
    assert t.max() == pytest.approx(1.4, rel=1e-3)
    assert 0.6 < u[t.argmax()] < 0.9 and t[-1] == 0.0


@pytest.mark.parametrize("step", [0.3, 0.1, 0.03])
def test_dome_volume_is_right_at_any_pixel_size(step: float) -> None:
    """A half-ellipsoid of radius 3 µm and height 2 µm holds (2/3)·π·r²·h at every pixel size."""
    x, y = _grid(4.0, step)
    t, _ = outline_thickness(Blob((0.0, 0.0), 3.0), Profile("dome", 2.0, power=0.5), x, y, step)
    assert t.sum() * step**2 == pytest.approx(2 / 3 * math.pi * 9 * 2.0, rel=0.01)


def test_notch_makes_a_kidney_and_harmonics_elongate() -> None:
    kidney = Blob((0.0, 0.0), 3.0, notch=(0.5, 0.0, 0.5))
    pts = np.array([2.0, -2.0, 0.0], np.float32), np.array([0.0, 0.0, 2.0], np.float32)
    assert inside(kidney, *pts).tolist() == [False, True, True]  # the notch faces +x
    oval = Blob((0.0, 0.0), 3.0, ((2, 0.2, 0.0),))  # longest along x
    assert inside(oval, np.array([3.4], np.float32), np.array([0.0], np.float32))[0]
    assert not inside(oval, np.array([0.0], np.float32), np.array([2.6], np.float32))[0]


def test_capsule_is_a_rounded_segment() -> None:
    cap = Capsule((0.0, 0.0), (4.0, 0.0), 0.25)
    x = np.array([2.0, 2.0, 4.2, 4.3, -0.2], np.float32)
    y = np.array([0.2, 0.3, 0.0, 0.0, 0.0], np.float32)
    assert inside(cap, x, y).tolist() == [True, False, True, False, True]
    assert cap.scaled(2.0, (0.0, 0.0)) == Capsule((0.0, 0.0), (8.0, 0.0), 0.5)


def test_shapes_validate_their_inputs() -> None:
    with pytest.raises(ValueError, match="kind"):
        Profile("cone", 1.0)
    with pytest.raises(ValueError, match="centre_um"):
        Profile("biconcave", 1.0, 2.0)
    with pytest.raises(ValueError, match="radius per centre"):
        Spheres(((0.0, 0.0),), (0.1, 0.2))
