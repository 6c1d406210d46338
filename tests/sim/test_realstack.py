from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.io

from sim.realstack import RealStackError, furthest_from_focus, read_real_stack, same_field, write_real_stack


def test_round_trip_keeps_images_and_rig_parameters(tmp_path: Path) -> None:
    images = np.random.default_rng(0).random((225, 8, 6)).astype(np.float32)
    path = write_real_stack(tmp_path / "s.mat", images, 532.0, defocus_um=10.0, rotation_deg=2.0,
                            offset_mm=(0.0, 0.35))
    stack = read_real_stack(path)
    np.testing.assert_array_equal(stack.images, images)
    assert (stack.wavelength_nm, stack.defocus_um, stack.rotation_deg) == pytest.approx((532.0, 10.0, 2.0))
    assert stack.channel == "g"
    rig = stack.rig()
    assert rig.geometry.wavelengths_nm == {"g": pytest.approx(532.0)}
    centre = rig.geometry.leds[0]
    assert (centre.x_mm, centre.y_mm) == pytest.approx((0.0, 0.35))


def test_file_z_is_the_simulator_defocus_in_metres(tmp_path: Path) -> None:
    path = write_real_stack(tmp_path / "s.mat", np.ones((225, 4, 4), np.float32), 630.0, defocus_um=-55.0)
    assert float(scipy.io.loadmat(str(path))["z"].squeeze()) == pytest.approx(-55e-6)
    assert read_real_stack(path).defocus_um == pytest.approx(-55.0)


def test_missing_keys_and_wrong_led_count_are_named(tmp_path: Path) -> None:
    bad = tmp_path / "bad.mat"
    scipy.io.savemat(str(bad), {"imlow_HDR": np.zeros((4, 4, 225), np.float32), "wlength": 6.3e-7})
    with pytest.raises(RealStackError, match="missing z, theta, xint, yint"):
        read_real_stack(bad)
    short = write_real_stack(tmp_path / "short.mat", np.ones((30, 4, 4), np.float32), 630.0)
    with pytest.raises(RealStackError, match="30 images but rig 'uconn-15x15' has 225 LEDs"):
        read_real_stack(short).rig()
    with pytest.raises(RealStackError, match="cannot read"):
        read_real_stack(tmp_path / "absent.mat")


def test_the_slide_comes_from_the_colour_of_the_same_field_furthest_from_focus(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    field = 1.0 + 0.3 * rng.random((225, 6, 6)).astype(np.float32)
    other_field = 1.0 + 0.3 * rng.random((225, 6, 6)).astype(np.float32)
    red = write_real_stack(tmp_path / "red.mat", field, 630.0, defocus_um=-55.0)
    green = write_real_stack(tmp_path / "green.mat", field * 1.1, 532.0, defocus_um=10.0, offset_mm=(0.0, 0.35))
    write_real_stack(tmp_path / "blue.mat", field, 470.0, defocus_um=30.0)
    write_real_stack(tmp_path / "turned.mat", field, 470.0, defocus_um=90.0, rotation_deg=5.0)  # another rig
    write_real_stack(tmp_path / "wide.mat", np.ones((225, 8, 6), np.float32), 470.0, defocus_um=90.0)
    write_real_stack(tmp_path / "elsewhere.mat", other_field, 470.0, defocus_um=90.0)  # another field
    (tmp_path / "notes.mat").write_bytes(b"not a stack")
    g = read_real_stack(green)
    assert sorted(o.path.name for o in same_field(g)) == ["blue.mat", "red.mat"]
    slide = furthest_from_focus(g)
    assert slide is not None and slide.path.name == "red.mat"
    assert furthest_from_focus(read_real_stack(red)) is None  # furthest itself: its own slide
    (tmp_path / "alone").mkdir()
    alone = write_real_stack(tmp_path / "alone" / "green.mat", field, 532.0, defocus_um=10.0)
    assert furthest_from_focus(read_real_stack(alone)) is None
