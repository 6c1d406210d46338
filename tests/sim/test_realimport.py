from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from core import rawscan
from edge.device.cameras.replay import ReplayCamera
from edge.device.stack import FieldRequest, plane_layout
from firmware_bridge.recipes import resolve_recipe
from sim.realimport import ADU_PER_UNIT_MS, import_real_stack
from sim.realstack import read_real_stack, write_real_stack


@pytest.fixture()
def real_file(tmp_path: Path) -> Path:
    rng = np.random.default_rng(3)
    images = np.empty((225, 16, 16), np.float32)
    images[:] = 0.01 * rng.random((225, 16, 16))
    images[:9] += 1.0  # the centre and ring 1 are brightfield
    return write_real_stack(tmp_path / "stack.mat", images, 630.0, defocus_um=-5.0)


def test_import_writes_a_replayable_field_with_the_rig_geometry(real_file: Path, tmp_path: Path) -> None:
    summary = import_real_stack(real_file, tmp_path / "scan")
    image = rawscan.read_image(Path(summary["field"]))
    meta = image.meta
    assert summary["recipe"] == "na0-0.4"
    assert image.pixels.shape == (summary["planes"], 1, 16, 16)
    assert meta["color_channels"] == ["r"] and meta["pixel_size_um"] == pytest.approx(1.845)
    assert len(meta["geometry"]["leds"]) == 225
    # ADU / exposure gives back the HDR intensity of each single-LED normal/low plane
    stack = read_real_stack(real_file)
    for p in meta["planes"][1:40]:
        if p["exposure_class"] == "high":
            continue
        restored = image.pixels[p["plane"], 0] / (p["exposure_ms"] * ADU_PER_UNIT_MS)
        np.testing.assert_allclose(restored, stack.images[p["led"]], rtol=2e-3, atol=2e-5)
    assert max(p["exposure_ms"] for p in meta["planes"] if p["exposure_class"] == "high") > 0


def test_replay_camera_serves_the_imported_planes(real_file: Path, tmp_path: Path) -> None:
    summary = import_real_stack(real_file, tmp_path / "scan")
    cam = ReplayCamera(tmp_path / "scan")
    try:
        recipe = resolve_recipe(summary["recipe"], read_real_stack(real_file).rig().geometry)
        layout = plane_layout(recipe, cam.calibration(recipe.id))
        cam.move_to(FieldRequest("real", 0, (0.0, 0.0)))
        frame = cam.grab(layout[5], 1.0)
        assert frame.shape == (1, 16, 16)
        assert cam.pixel_um == pytest.approx(1.845)
    finally:
        cam.close()
