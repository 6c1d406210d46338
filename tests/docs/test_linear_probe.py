"""docs/results/linear_probe.py: a closed-form read-out that beats the mean colour on held-out cells."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tests.support.scripts import load_script
from trainer.data.store import Dataset
from trainer.data.synthetic import SyntheticConfig, build_synthetic

ROOT = Path(__file__).resolve().parents[2]
linear_probe = load_script("docs/results/linear_probe.py")


def test_probe_reads_the_stain_better_than_the_mean_colour(tmp_path: Path) -> None:
    build_synthetic(SyntheticConfig(windows=16, window_px=96, recipe="le8", wbc_per_mm2=3000.0, seed=2,
                                    windows_per_slide=1), tmp_path / "s.zarr")
    ds = Dataset(tmp_path / "s.zarr")
    assert len(ds.split_indices("test")) >= 1
    mean = np.mean([ds.target(int(i)).mean(axis=(1, 2)) for i in ds.split_indices("train")], axis=0)
    baseline = np.mean([np.abs(ds.target(int(i)) - mean[:, None, None]).mean() for i in ds.split_indices("test")])
    rows = {r: linear_probe.probe(tmp_path / "s.zarr", r, hr=False) for r in ("brightfield", "le8")}
    assert rows["brightfield"]["features"] == 3 * 25 and rows["le8"]["features"] == 4 * 3 * 25
    for row in rows.values():
        assert row["test_mae"] < 0.8 * baseline, (row, baseline)
