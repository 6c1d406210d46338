"""The zarr dataset store: round trip, sub-recipes, resume keys and clear errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import zarr

from firmware_bridge.recipes import resolve_recipe
from firmware_bridge.rigs import get_profile
from trainer.data.store import META_COLUMNS, Dataset, DatasetError, DatasetWriter, StoreInfo


def _info(recipe: str = "full", hr: bool = False) -> StoreInfo:
    return StoreInfo(resolve_recipe(recipe, get_profile("thesis-43")), 16, 12, 16, 12, 16, 0.293, hr, "synthetic")


def _meta(n: int, field: int) -> dict[str, list[object]]:
    cols: dict[str, list[object]] = {c: [0] * n for c in META_COLUMNS}
    cols.update(sample_id=[f"s/{field}/{i}" for i in range(n)], slide=["s"] * n, cell_type=["lymphocyte"] * n,
                field=[field] * n, split=[i % 3 for i in range(n)])
    return cols


def _write(path: Path, hr: bool = False) -> np.ndarray:
    info = _info(hr=hr)
    rng = np.random.default_rng(0)
    inputs = rng.integers(16, 4095, (5, len(info.recipe), 3, 16, 16), dtype=np.uint16)
    w = DatasetWriter(path, info)
    w.append(inputs[:3], inputs[:3, 0], _meta(3, 0), inputs[:3, 1] if hr else None, done_key="field0")
    w.append(inputs[3:], inputs[3:, 0], _meta(2, 1), inputs[3:, 1] if hr else None, done_key="field1")
    return inputs


def test_round_trip_and_sub_recipe(tmp_path: Path) -> None:
    inputs = _write(tmp_path / "d.zarr", hr=True)
    full = Dataset(tmp_path / "d.zarr")
    assert len(full) == 5 and full.has_hr
    x = full.inputs(4)
    assert x.shape == (74 * 3, 16, 16) and x.min() >= 0.0 and x.max() <= 1.0
    np.testing.assert_allclose(x[0], (inputs[4, 0, 0] - 16) / (4095 - 16), rtol=1e-6)
    sub = Dataset(tmp_path / "d.zarr", recipe="brightfield")
    np.testing.assert_array_equal(sub.inputs(2), full.inputs(2)[:3])
    nohe = Dataset(tmp_path / "d.zarr", recipe="full-nohe")
    assert nohe.inputs(0).shape[0] == 44 * 3
    assert list(full.split_indices("val")) == [1, 4]
    assert full.meta["sample_id"][3] == "s/1/0"
    assert DatasetWriter(tmp_path / "d.zarr", _info(hr=True)).done == {"field0", "field1"}


def test_capture_cannot_serve_a_superset_recipe(tmp_path: Path) -> None:
    w = DatasetWriter(tmp_path / "d.zarr", _info("le18"))
    w.append(np.zeros((1, 14, 3, 16, 16), np.uint16), np.zeros((1, 3, 16, 16), np.uint16), _meta(1, 0))
    with pytest.raises(Exception, match="does not hold"):
        Dataset(tmp_path / "d.zarr", recipe="full")


def test_reopening_with_another_recipe_is_refused(tmp_path: Path) -> None:
    _write(tmp_path / "d.zarr")
    with pytest.raises(DatasetError, match="another --out"):
        DatasetWriter(tmp_path / "d.zarr", _info("le18"))


def test_newer_schema_and_non_dataset_are_refused(tmp_path: Path) -> None:
    _write(tmp_path / "d.zarr")
    zarr.open_group(str(tmp_path / "d.zarr"), mode="r+").attrs["schema_version"] = 99
    with pytest.raises(DatasetError, match="schema_version 99"):
        Dataset(tmp_path / "d.zarr")
    with pytest.raises(DatasetError, match="not a stainless dataset"):
        Dataset(tmp_path / "missing.zarr")


def test_append_checks_lengths(tmp_path: Path) -> None:
    w = DatasetWriter(tmp_path / "d.zarr", _info())
    with pytest.raises(DatasetError, match="meta columns"):
        w.append(np.zeros((2, 74, 3, 16, 16), np.uint16), np.zeros((1, 3, 16, 16), np.uint16), _meta(2, 0))
