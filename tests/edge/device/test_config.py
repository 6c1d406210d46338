from __future__ import annotations

from pathlib import Path

import pytest

from core.config import ConfigError
from edge.device.config import BatchingConfig, config_from_dict, load_config

ROOT = Path(__file__).resolve().parents[3]


def test_shipped_configs_load() -> None:
    cfg = load_config(ROOT / "deploy/configs/sim.toml")
    assert cfg.led.url == "sim://thesis-43" and cfg.camera.url == "sim://" and cfg.model.bundle.endswith(".stainless")
    assert load_config(ROOT / "deploy/configs/device.toml").model.fallback == "previous"


@pytest.mark.parametrize(("doc", "needle"), [
    ({"model": {"onnx": "m.onnx"}, "bogus": {}}, "unknown section(s) bogus"),
    ({"model": {"onnx": "m.onnx", "colour": 1}}, "model.colour: unknown key; valid keys of [model]: bundle"),
    ({"model": {"onnx": "m.onnx"}, "batching": {"max_batch": 0}}, "batching.max_batch: expected 1 .. 1024, found 0"),
    ({"model": {"onnx": "m.onnx"}, "batching": {"max_batch": "8"}}, "batching.max_batch: expected an integer"),
    ({"model": {"onnx": "m.onnx"}, "acquisition": {"mode": "fast"}}, "acquisition.mode: expected one of"),
    ({"model": {"onnx": "m.onnx", "bundle": "b"}}, "exactly one of bundle / onnx"),
    ({"model": {"onnx": "m.onnx"}, "qc": {"reject": ["wobbly"]}}, "qc.reject: expected a subset of"),
    ({}, "[model] is required"),
])
def test_bad_values_are_rejected_by_name(doc: dict, needle: str) -> None:
    with pytest.raises(ConfigError) as err:
        config_from_dict(doc)
    assert needle in str(err.value)


def test_queue_must_hold_a_batch() -> None:
    with pytest.raises(ConfigError, match="queue_size"):
        BatchingConfig(max_batch=16, queue_size=8)


def test_bad_toml_names_the_file(tmp_path: Path) -> None:
    p = tmp_path / "x.toml"
    p.write_text("[model\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(p)
