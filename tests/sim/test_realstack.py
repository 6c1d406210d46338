from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.io

from sim.realstack import RealStackError, read_real_stack, write_real_stack


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
