"""The camera model's noise statistics, saturation and exposure choice."""

from __future__ import annotations

import numpy as np
import pytest

from core.camera import Exposure
from sim.camera import SensorConfig, expected_electrons, expose, exposure_for

CAM = SensorConfig(read_noise_e=5.0)
CH = ("g",)


def _flat(level: float, n: int = 256) -> np.ndarray:
    return np.full((1, n, n), level, np.float32)


@pytest.mark.parametrize("mean_e", [3.0, 40.0, 5_000.0])
def test_shot_and_read_noise_match_the_model(mean_e: float) -> None:
    qe = CAM.qe["g"]
    exposure = Exposure(1.0)
    level = mean_e / (CAM.photons_per_ms * qe)
    frame = expose(_flat(level), 1.0, exposure, CAM, CH, np.random.default_rng(1)).astype(np.float64)
    electrons = (frame - CAM.black_level_adu) * CAM.electrons_per_adu
    expected_var = mean_e + CAM.read_noise_e**2 + CAM.electrons_per_adu**2 / 12  # + quantisation
    assert electrons.mean() == pytest.approx(mean_e, rel=0.02, abs=0.3)
    assert electrons.var() == pytest.approx(expected_var, rel=0.06)


def test_gain_scales_signal_and_saturation_clips_at_bit_depth() -> None:
    rng = np.random.default_rng(2)
    base = expose(_flat(0.05), 1.0, Exposure(1.0, 1.0), CAM, CH, rng).mean() - CAM.black_level_adu
    doubled = expose(_flat(0.05), 1.0, Exposure(1.0, 2.0), CAM, CH, rng).mean() - CAM.black_level_adu
    assert doubled == pytest.approx(2 * base, rel=0.02)
    burnt = expose(_flat(10.0), 1.0, Exposure(10.0), CAM, CH, rng)
    assert burnt.max() == CAM.max_adu == 4095
    assert (burnt == CAM.max_adu).mean() > 0.99


def test_same_seed_same_frame_other_seed_other_frame() -> None:
    a = expose(_flat(0.3, 32), 1.0, Exposure(1.0), CAM, CH, np.random.default_rng(7))
    b = expose(_flat(0.3, 32), 1.0, Exposure(1.0), CAM, CH, np.random.default_rng(7))
    c = expose(_flat(0.3, 32), 1.0, Exposure(1.0), CAM, CH, np.random.default_rng(8))
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_exposure_for_hits_the_target_and_falls_back_to_gain() -> None:
    exp = exposure_for(1.0, 0.7, 1.0, CAM, ("r", "g", "b"))
    e = expected_electrons(_flat(1.0, 4), 1.0, exp, CAM, ("g",)).mean()
    assert e == pytest.approx(0.7 * CAM.full_well_e, rel=1e-6)
    dim = exposure_for(1e-6, 0.7, 1.0, CAM, ("g",))
    assert dim.exposure_ms == CAM.max_exposure_ms and dim.gain > 1


def test_bad_camera_config_names_the_field() -> None:
    with pytest.raises(ValueError, match="bit_depth"):
        SensorConfig(bit_depth=20)
