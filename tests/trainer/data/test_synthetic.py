"""The synthetic path: cells rendered straight into the store."""

from __future__ import annotations

from pathlib import Path

import pytest

from trainer.data.store import Dataset
from trainer.data.synthetic import SyntheticConfig, build_synthetic
from trainer.errors import ConfigError


def test_renders_cells_into_a_readable_store(tmp_path: Path) -> None:
    cfg = SyntheticConfig(windows=2, window_px=128, recipe="le8", wbc_per_mm2=3000.0, seed=4)
    report = build_synthetic(cfg, tmp_path / "s.zarr")
    ds = Dataset(tmp_path / "s.zarr")
    assert report["samples"] == len(ds) >= 1
    assert ds.inputs(0).shape == (4 * 3, 64, 64) and ds.attrs["source"] == "synthetic"
    assert set(ds.meta["cell_type"]) <= {"neutrophil", "lymphocyte", "monocyte", "eosinophil", "basophil"}
    assert build_synthetic(cfg, tmp_path / "s.zarr")["windows_skipped"] == 2


def test_config_is_checked() -> None:
    with pytest.raises(ConfigError, match="window_px"):
        SyntheticConfig(window_px=32)
