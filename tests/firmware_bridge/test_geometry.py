"""LED array geometry: the thesis-43 and sci-round-257 profiles and the validation of geometries."""

from __future__ import annotations

import math

import pytest

from firmware_bridge.errors import GeometryError
from firmware_bridge.geometry import ArrayGeometry, Led, geometry_from_positions
from firmware_bridge.rigs import get_profile


def test_thesis_43_matches_the_seed() -> None:
    g = get_profile("thesis-43")
    assert len(g.leds) == 43
    assert g.objective_na == 0.4 and g.objective_magnification == 20
    assert g.darkfield_angle_deg == pytest.approx(23.58, abs=0.01)
    plate = g.leds[:3]
    assert all(led.angle_deg <= 8.0 for led in plate)
    assert len(g.brightfield_indices) == 13 and len(g.darkfield_indices) == 30
    for arm in range(5):
        leds = g.leds[3 + 8 * arm : 11 + 8 * arm]
        angles = [led.angle_deg for led in leds]
        assert angles == sorted(angles)
        assert sum(g.is_brightfield(led.index) for led in leds) == 2
        assert all(8 < a < 18 for a in angles[:2])
        assert 23.6 < angles[2] < 25 and max(angles) == pytest.approx(57.0)
        assert sum(a <= 36 for a in angles[2:]) == 3
    azimuths = {round(math.degrees(math.atan2(led.y_mm, led.x_mm)) % 360) for led in g.leds[3::8]}
    assert azimuths == {90, 162, 234, 306, 18}


def test_illumination_na_is_the_sine_of_the_angle() -> None:
    for led in get_profile("thesis-43").leds:
        assert led.na == pytest.approx(math.sin(math.radians(led.angle_deg)))
        assert math.hypot(led.na_x, led.na_y) == pytest.approx(led.na)


def test_sci_round_257() -> None:
    g = get_profile("sci-round-257")
    assert len(g.leds) == 257 and g.channels == ("r",)
    assert (g.leds[0].x_mm, g.leds[0].y_mm) == (0.0, 0.0)
    # LED 1 on the board's table sits at (0, -6.2) mm, LED 9 at (0, -12.4) mm.
    assert (g.leds[1].x_mm, g.leds[1].y_mm) == pytest.approx((0.0, -6.2), abs=1e-9)
    assert (g.leds[9].x_mm, g.leds[9].y_mm) == pytest.approx((0.0, -12.4), abs=1e-9)
    assert (g.leds[2].x_mm, g.leds[2].y_mm) == pytest.approx((-4.38, -4.38), abs=0.01)


def test_unknown_profile_lists_the_valid_ones() -> None:
    with pytest.raises(GeometryError, match="valid profiles: sci-round-257, thesis-43"):
        get_profile("thesis-42")


@pytest.mark.parametrize(
    ("leds", "na", "message"),
    [
        ((Led(0, 0, 0, -5.0),), 0.4, "behind or in the sample"),
        ((Led(0, 0, 0, 0.0),), 0.4, "behind or in the sample"),
        ((Led(0, 0, 0, 50.0),), 1.0, "expected 0 < NA < 1"),
        ((Led(0, 0, 0, 50.0),), 0.0, "expected 0 < NA < 1"),
        ((Led(1, 0, 0, 50.0),), 0.4, "expected indices 0..N-1"),
        ((), 0.4, "no LEDs"),
        ((Led(0, float("nan"), 0, 50.0),), 0.4, "non-finite"),
    ],
)
def test_impossible_geometry_is_refused(leds: tuple[Led, ...], na: float, message: str) -> None:
    with pytest.raises(GeometryError, match=message):
        ArrayGeometry("bad", leds, na, 20.0)


def test_round_trip_and_led_lookup() -> None:
    g = get_profile("thesis-43")
    again = ArrayGeometry.from_dict(g.to_dict())
    assert again.to_dict() == g.to_dict()
    assert g.with_objective(0.25).brightfield_indices != g.brightfield_indices
    with pytest.raises(GeometryError, match=r"valid 0\.\.42"):
        g.led(43)
    with pytest.raises(GeometryError, match="malformed"):
        ArrayGeometry.from_dict({"name": "x"})
    built = geometry_from_positions("custom", [(0, 0, 40), (10, 0, 40)], 0.2, 10)
    assert built.brightfield_indices == (0,) and built.darkfield_indices == (1,)
