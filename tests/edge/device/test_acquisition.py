"""Acquisition with the replay camera (a raw scan written by the simulator) and QC on its stacks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from core.config import ConfigError
from edge.device.acquisition import Acquirer, apply_flat_field
from edge.device.cameras import open_camera
from edge.device.cell_jobs import energy_maps
from edge.device.config import AcquisitionConfig, CameraConfig, QcConfig
from edge.device.errors import CameraError
from edge.device.qc import run_qc
from edge.device.stack import FieldRequest, PlaneInfo
from firmware_bridge.client import open_led_array
from firmware_bridge.recipes import resolve_recipe
from sim.scan import ScanConfig, scan


@pytest.fixture(scope="module")
def raw_scan(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("scan")
    scan(ScanConfig(recipe="le8", fields=1, seed=2, field_size_px=(64, 64), smear={"wbc_per_mm2": 1500.0}), out)
    return out


def test_replay_returns_the_recorded_planes(raw_scan: Path) -> None:
    from core.rawscan import list_fields, read_image

    recorded = read_image(list_fields(raw_scan)[0]).pixels
    cam = open_camera(f"replay://{raw_scan}", CameraConfig(url=f"replay://{raw_scan}"))
    with open_led_array("sim://thesis-43") as led:
        acq = Acquirer(led, cam, resolve_recipe("le8", led.geometry()), AcquisitionConfig())
        stack = acq.capture(FieldRequest("s", 0, (0.0, 0.0)))
    np.testing.assert_array_equal(stack.pixels, recorded)
    assert stack.planes[0].name == "bf" and stack.pixel_um == pytest.approx(0.293)
    with pytest.raises(ConfigError, match="no entry for channel"), open_led_array("sim://thesis-43") as led:
        Acquirer(led, cam, resolve_recipe("full-nohe", led.geometry()), AcquisitionConfig())
    with pytest.raises(CameraError, match="another recipe"):
        cam.grab(PlaneInfo("led30:low", (30,), True, 42.0, "low", stack.planes[0].exposure), 1.0)
    cam.close()


def test_flat_field_is_applied_in_adu() -> None:
    frame = np.full((3, 2, 2), 116, np.uint16)
    out = apply_flat_field(frame, np.full((3, 2, 2), 1.5, np.float32), 16.0, 4095)
    assert (out == 166).all() and out.dtype == np.uint16


def test_qc_flags_a_shifted_brightfield(raw_scan: Path) -> None:
    cam = open_camera(f"replay://{raw_scan}", CameraConfig(url=f"replay://{raw_scan}"))
    with open_led_array("sim://thesis-43") as led:
        stack = Acquirer(led, cam, resolve_recipe("le8", led.geometry()), AcquisitionConfig()).capture(
            FieldRequest("s", 0, (0.0, 0.0)))
    cam.close()
    from edge.device.config import DetectorConfig

    _, total = energy_maps(stack, DetectorConfig())
    assert "misaligned" not in run_qc(stack, total, QcConfig()).flags
    stack.pixels[0] = np.roll(stack.pixels[0], 4, axis=-1)  # 4 px ≈ 1.2 µm stage slip
    report = run_qc(stack, total, QcConfig())
    assert "misaligned" in report.flags and report.metrics["misalignment_um"] > 0.9


def test_qc_and_the_dataset_builder_measure_the_same_slip(raw_scan: Path) -> None:
    """Device QC and the dataset builder's PLS check give one figure for one stack (one measurement)."""
    from core.rawscan import list_fields, read_image
    from trainer.data.plscheck import pls_shift

    image = read_image(list_fields(raw_scan)[0])
    cam = open_camera(f"replay://{raw_scan}", CameraConfig(url=f"replay://{raw_scan}"))
    with open_led_array("sim://thesis-43") as led:
        stack = Acquirer(led, cam, resolve_recipe("le8", led.geometry()), AcquisitionConfig()).capture(
            FieldRequest("s", 0, (0.0, 0.0)))
        na = led.geometry().objective_na
    cam.close()
    stack.pixels[0] = np.roll(stack.pixels[0], (1, 3), axis=(-2, -1))
    from edge.device.config import DetectorConfig

    qc_um = run_qc(stack, energy_maps(stack, DetectorConfig())[1], QcConfig()).metrics["misalignment_um"]
    builder = pls_shift(stack.pixels, image.meta["planes"], na, stack.black_level)
    assert builder is not None and builder.magnitude == pytest.approx(np.hypot(1, 3), abs=0.3)
    assert qc_um == pytest.approx(builder.magnitude * stack.pixel_um, rel=1e-6)
