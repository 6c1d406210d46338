from __future__ import annotations

import math
from pathlib import Path

import pytest

from firmware_bridge.errors import GeometryError
from firmware_bridge.rigs import get_profile, get_rig, load_rig, spiral_order

RIG_TOML = """
name = "bench-rig"
wavelengths_nm = { r = 625.0, g = 520.0 }

[objective]
na = 0.25
magnification = 10.0

[camera]
pixel_um = 3.45

[[leds]]
kind = "grid"
rows = 3
cols = 3
pitch_mm = 5.0
distance_mm = 50.0
rotation_deg = 90.0
offset_mm = [1.0, 0.0]
order = "raster"

[[leds]]
kind = "ring"
count = 4
radius_mm = 40.0
distance_mm = 30.0
start_deg = 0.0

[[leds]]
kind = "list"
positions_mm = [[0.0, 0.0, 10.0]]
"""


def test_spiral_starts_each_ring_one_step_past_the_previous_corner() -> None:
    order = spiral_order(5, 5)
    assert order[:9] == [(0, 0), (1, 0), (1, 1), (0, 1), (-1, 1), (-1, 0), (-1, -1), (0, -1), (1, -1)]
    assert order[9] == (2, -1)
    assert sorted(order) == sorted((x, y) for x in range(-2, 3) for y in range(-2, 3))


def test_uconn_rig_matches_the_data_set_description() -> None:
    rig = get_rig("uconn-15x15")
    g = rig.geometry
    assert len(g.leds) == 225
    assert len(g.brightfield_indices) == 21  # the data README: 21 LEDs inside NA 0.1
    assert max(led.na for led in g.leds) == pytest.approx(0.3994, abs=1e-3)
    assert rig.sample_pixel_um == pytest.approx(1.845)
    # ring 2 of the spiral: its corners (LEDs 12, 16, 20, 24) are the first darkfield images
    assert [i for i in range(9, 25) if not g.is_brightfield(i)] == [12, 16, 20, 24]


def test_rig_file_builds_grids_rings_and_lists_in_file_order(tmp_path: Path) -> None:
    path = tmp_path / "bench.toml"
    path.write_text(RIG_TOML)
    rig = load_rig(path)
    g = rig.geometry
    assert len(g.leds) == 9 + 4 + 1
    assert g.wavelengths_nm == {"r": 625.0, "g": 520.0}
    assert (g.objective_na, g.objective_magnification, rig.camera_pixel_um) == (0.25, 10.0, 3.45)
    # raster row 0 col 0 is (-5, -5) before turning by 90° (x, y) -> (-y, x), then +1 mm in x
    first = g.leds[0]
    assert (first.x_mm, first.y_mm, first.z_mm) == pytest.approx((6.0, -5.0, 50.0))
    ring = g.leds[9:13]
    assert [(round(led.x_mm, 6), round(led.y_mm, 6)) for led in ring] == [(40.0, 0.0), (0.0, 40.0), (-40.0, 0.0),
                                                                          (0.0, -40.0)]
    assert g.leds[13].z_mm == 10.0
    # a rig file works wherever a profile name does
    assert get_profile(str(path)).leds == g.leds


@pytest.mark.parametrize(("edit", "message"), [
    (("pitch_mm = 5.0", "pitch_mm = -5.0"), "pitch_mm must be > 0"),
    (("order = \"raster\"", "order = \"zigzag\""), "order must be one of"),
    (("kind = \"ring\"", "kind = \"hexagon\""), "kind must be one of"),
    (("start_deg = 0.0", "start_angle = 0.0"), "unknown key(s) start_angle"),
    (("pixel_um = 3.45", "pixel_um = \"small\""), "pixel_um must be a number"),
])
def test_bad_rig_files_are_refused_by_key(tmp_path: Path, edit: tuple[str, str], message: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(RIG_TOML.replace(*edit))
    with pytest.raises(GeometryError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_rig(path)


def test_missing_rig_file_and_unknown_profile_say_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(GeometryError, match="cannot read rig file"):
        get_profile(str(tmp_path / "nope.toml"))
    with pytest.raises(GeometryError, match="uconn-15x15"):
        get_profile("no-such-array")


def test_builtin_profiles_keep_the_simulator_camera() -> None:
    rig = get_rig("thesis-43")
    assert rig.camera_pixel_um == 5.86
    assert math.isclose(rig.sample_pixel_um, 0.293)


def test_a_rig_serves_as_an_emulated_led_array() -> None:
    from firmware_bridge.client import open_led_array

    with open_led_array("sim://uconn-15x15") as leds:
        g = leds.geometry()
        assert len(g.leds) == 225
        assert g.leds[12].x_mm == pytest.approx(8.0, abs=0.01) and g.leds[12].y_mm == pytest.approx(8.0, abs=0.01)
