"""Whole-field stain in the daemon: config switch, payload of the `field` message, errors reported."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from core.config import ConfigError
from edge.client import FieldSummary, StainedCell
from edge.device.config import FieldStainConfig, ModelConfig, config_from_dict
from edge.device.crops import Normalisation, crop_window
from edge.device.fieldstain import FieldStainer, model_bytes, open_field_stainer
from edge.device.onnxshape import free_spatial_dims
from tests.edge.conftest import PATCH, bench_config
from tests.edge.device.test_app import run_scan

ROOT = Path(__file__).resolve().parents[3]
BUNDLE = ROOT / "models" / "default.stainless"


def test_off_by_default_and_checked_by_name() -> None:
    assert FieldStainConfig().enabled is False
    with pytest.raises(ConfigError, match=r"field_stain\.halo_px: expected"):
        FieldStainConfig(halo_px=300, max_tile_px=512)
    with pytest.raises(ConfigError, match=r"field_stain\.method"):
        config_from_dict({"model": {"onnx": "m.onnx"}, "field_stain": {"method": "pyramid"}})


def test_daemon_publishes_the_stained_field_with_the_field_message(tiny_model: Path) -> None:
    cfg = bench_config(tiny_model, field_stain=FieldStainConfig(enabled=True, max_tile_px=96))
    msgs, _, status = run_scan(cfg, [0, 1])
    fields = [m for m in msgs if isinstance(m, FieldSummary)]
    assert len(fields) == 2
    for f in fields:
        stained = f.payloads["stained"]
        assert stained.shape == (128, 128, 3) and stained.dtype == np.uint8
        info = f.header["stained_field"]
        assert info["method"] == "halo" and info["halo_px"] == 0 and info["tiles"] == 4
        assert info["compute_ratio"] == pytest.approx(1.0) and info["ms"] > 0
    cells = [m for m in msgs if isinstance(m, StainedCell) and "border" not in m.header["flags"]]
    assert cells, "no interior cell to compare"
    by_field = {f.header["field_id"]: f.payloads["stained"] for f in fields}
    for c in cells:  # the tiny model is 1x1: the cell's stain is the field's stain under the cell
        x0, y0 = crop_window(tuple(c.header["center_px"]), PATCH)
        np.testing.assert_array_equal(c.stained, by_field[c.header["field_id"]][y0:y0 + PATCH, x0:x0 + PATCH])
    assert status["latency_ms"]["field_stain_ms"]["n"] == 2


def test_without_the_switch_fields_carry_no_payload(tiny_config: object) -> None:
    msgs, _, _ = run_scan(tiny_config, [0])  # type: ignore[arg-type]
    f = next(m for m in msgs if isinstance(m, FieldSummary))
    assert f.payloads == {} and "stained_field" not in f.header


def test_a_rejected_field_stain_is_reported_and_the_cells_still_flow(nan_model: Path, tiny_model: Path) -> None:
    cfg = bench_config(tiny_model, field_stain=FieldStainConfig(enabled=True, halo_px=2, max_tile_px=96))
    cfg = cfg.replace(model=ModelConfig(onnx=str(nan_model), patch_size=PATCH, threads=1, fallback="none"))
    msgs, _, status = run_scan(cfg, [0])
    f = next(m for m in msgs if isinstance(m, FieldSummary))
    assert "stained" not in f.payloads and "non-finite" in f.header["stained_field"]["error"]
    assert status["counters"]["field_stain_failed"] == 1


def test_default_bundle_field_stain_matches_an_untiled_pass() -> None:
    from edge.device.backends.onnxruntime import OnnxRuntimeBackend

    cfg = ModelConfig(bundle=str(BUNDLE), threads=2)
    norm = Normalisation.uniform(44, 16.0, 4079.0)
    stainer = open_field_stainer(FieldStainConfig(enabled=True, max_tile_px=112), cfg, 132, norm)
    try:
        assert 8 <= stainer.halo < 112 // 2  # measured on the model (the shipped one: 43 px)
        h, w = 2 * stainer.halo + 34, 2 * stainer.halo + 44
        raw = np.random.default_rng(0).integers(16, 800, (44, 3, h, w)).astype(np.uint16)
        stained, info = stainer.stain(raw)
        assert info["tiles"] > 1 and info["tile"][0] <= 112
        ref = OnnxRuntimeBackend(free_spatial_dims(model_bytes(cfg)), threads=2)
        x = np.clip((raw.astype(np.float32) - 16) / 4079, 0, 1).reshape(1, 132, h, w)
        want = np.clip(np.rint(ref.infer(x)[0] * 255), 0, 255).astype(np.uint8)
        assert np.abs(stained.astype(int) - np.moveaxis(want, 0, -1)).max() <= 1
    finally:
        stainer.close()


def test_a_model_that_cannot_be_read_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "m.onnx"
    bad.write_bytes(b"not onnx")
    with pytest.raises(Exception, match="cannot open the model for whole fields"):
        open_field_stainer(FieldStainConfig(enabled=True), ModelConfig(onnx=str(bad)), 132,
                           Normalisation.uniform(44, 16.0, 4079.0))


def test_halo_tiles_cover_a_field_with_the_fewest_windows(tiny_model: Path) -> None:
    from edge.device.backends.onnxruntime import OnnxRuntimeBackend

    be = OnnxRuntimeBackend(free_spatial_dims(tiny_model.read_bytes()), threads=1)
    stainer = FieldStainer(FieldStainConfig(enabled=True, max_tile_px=32), be, 132,
                           Normalisation.uniform(44, 16.0, 4079.0), (-0.01, 1.01))
    assert stainer.halo == 0  # a 1x1 model
    plan = stainer.plan((70, 50))
    assert plan.tile == (24, 25) and plan.n_tiles == 6 and plan.compute_ratio < 1.04
    stainer.close()
