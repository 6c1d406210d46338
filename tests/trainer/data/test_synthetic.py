"""The synthetic path: cells rendered straight into the store."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import cv2
import numpy as np
import pytest

from core.config import ConfigError
from trainer.data.store import Dataset, DatasetError
from trainer.data.synthetic import SyntheticConfig, build_synthetic


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


def test_hr_targets_are_registered_100x_images_without_refraction_rims(tmp_path: Path) -> None:
    """--hr: a 100x oil image per cell on the 20x crop grid, in register with the 20x target;
    oil erases the phase contrast, so the red cells' dark refraction rims of the 20x image vanish."""
    cfg = SyntheticConfig(windows=1, window_px=128, recipe="brightfield", wbc_per_mm2=3000.0, seed=4, hr=True)
    build_synthetic(cfg, tmp_path / "s.zarr")
    ds = Dataset(tmp_path / "s.zarr")
    assert len(ds) >= 1 and ds.has_hr and ds.attrs["has_hr"]
    for i in range(len(ds)):
        low, high = ds.target(i).mean(axis=0), ds.target(i, hr=True).mean(axis=0)
        assert high.shape == low.shape == (64, 64)
        (dx, dy), _ = cv2.phaseCorrelate(1.0 - low.astype(np.float64), 1.0 - high.astype(np.float64))
        assert abs(dx) < 0.5 and abs(dy) < 0.5, (dx, dy)
        assert np.percentile(high, 1) > np.percentile(low, 1) + 0.1  # no near-black rims under oil


def test_resuming_a_store_with_or_without_hr_targets_must_match(tmp_path: Path) -> None:
    cfg = SyntheticConfig(windows=1, window_px=96, recipe="brightfield", seed=4)
    build_synthetic(cfg, tmp_path / "s.zarr")
    with pytest.raises(DatasetError, match="has no 100x targets; this build needs"):
        build_synthetic(dataclasses.replace(cfg, windows=2, hr=True), tmp_path / "s.zarr")


def test_focus_error_blurs_the_unstained_stack_only(tmp_path: Path) -> None:
    """focus_sd_um: each window's unstained scan is rendered out of focus by its own draw; the
    stained target (a separate scan, focused) shows the same scene (its camera noise may be another
    draw: the noise generator is shared with the stack), and focus_sd_um=0 is the sharp scan."""
    base = SyntheticConfig(windows=1, window_px=128, recipe="brightfield", wbc_per_mm2=3000.0, seed=4)
    sharp, blurred = tmp_path / "sharp.zarr", tmp_path / "blurred.zarr"
    build_synthetic(base, sharp)
    build_synthetic(dataclasses.replace(base, focus_sd_um=1.5), blurred)
    a, b = Dataset(sharp), Dataset(blurred)
    assert len(a) == len(b) >= 1
    assert np.abs(a.target(0) - b.target(0)).mean() < 0.01  # of full scale: camera noise at most
    assert np.abs(a.inputs(0) - b.inputs(0)).mean() > 0.02
    with pytest.raises(ConfigError, match="focus_sd_um"):
        SyntheticConfig(focus_sd_um=-1.0)
