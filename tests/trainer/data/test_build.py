"""The dataset build from raw scans: pairs, report, resume, bad fields, parallel workers."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from core import rawscan
from trainer.data.build import BuildError, build_dataset, slide_id
from trainer.data.config import BuildConfig
from trainer.data.store import Dataset, DatasetError


def _copy(scan: Path, tmp: Path, name: str = "slide-b") -> Path:
    out = tmp / name
    shutil.copytree(scan, out)
    return out


def test_builds_pairs_with_positions_and_resumes(small_scan: Path, tmp_path: Path) -> None:
    out = tmp_path / "d.zarr"
    report = build_dataset([small_scan], out, hr=True)
    assert report["fields"]["fields_used"] == 2 and report["samples_total"] == report["cells"]["kept"] >= 2
    assert report["registration"]["ncc_score"]["min"] > 0.5
    assert report["registration"]["fine_offset_px"]["max"] < 1.5
    ds = Dataset(out)
    assert ds.has_hr and ds.inputs(0).shape == (14 * 3, 64, 64) and ds.target(0, hr=True).shape == (3, 64, 64)
    assert set(ds.meta["slide"]) == {"slide-a"} and len(set(ds.meta["split"])) == 1
    # Positions are on the stage (µm); every kept cell lies near a simulated white cell.
    truth = [w["center_stage_um"] for i in range(2) for w in rawscan.read_truth(small_scan, i)["wbcs"]]
    for x, y in zip(ds.meta["x_um"], ds.meta["y_um"], strict=True):
        assert min(np.hypot(x - tx, y - ty) for tx, ty in truth) < 3.0
    np.testing.assert_array_equal(Dataset(out, recipe="brightfield").inputs(0), ds.inputs(0)[:3])
    again = build_dataset([small_scan], out, hr=True)
    assert again["fields"] == {"processed": 0, "fields_already_done": 2} and again["samples_total"] == len(ds)


def test_bad_fields_are_skipped_counted_and_the_build_goes_on(small_scan: Path, tmp_path: Path) -> None:
    scan = _copy(small_scan, tmp_path)
    f0, f1 = rawscan.list_fields(scan)
    (f0 / "stained.ome.tif").unlink()  # a field with no stained re-scan
    data = (f1 / "unstained.ome.tif").read_bytes()
    (f1 / "unstained.ome.tif").write_bytes(data[: len(data) // 3])  # truncated stack
    orphan = scan / "fields" / "field_0002"  # a stained image without its unstained field
    orphan.mkdir()
    shutil.copy(f0.parent / "field_0001" / "stained.json", orphan / "stained.json")
    report = build_dataset([scan], tmp_path / "d.zarr")
    assert report["fields"] == {"processed": 2, "rejected:no_stained": 1, "rejected:unreadable": 1,
                                "rejected:no_unstained": 1}
    assert report["samples_total"] == 0


def test_two_slides_in_parallel_never_share_a_split(small_scan: Path, tmp_path: Path) -> None:
    other = _copy(small_scan, tmp_path, "slide-c")
    report = build_dataset([small_scan, other], tmp_path / "d.zarr", workers=2)
    assert report["fields"]["fields_used"] == 4
    ds = Dataset(tmp_path / "d.zarr")
    for slide in ("slide-a", "slide-c"):
        assert len(set(ds.meta["split"][ds.meta["slide"] == slide])) == 1
    assert slide_id(other) == "slide-c"


def test_pls_reject_and_wrong_store(small_scan: Path, tmp_path: Path) -> None:
    cfg = BuildConfig.from_dict({"pls": {"max_shift_px": 1e-6, "action": "reject"}})
    report = build_dataset([small_scan], tmp_path / "d.zarr", cfg)
    assert report["fields"]["rejected:pls_misaligned"] == 2
    other = BuildConfig.from_dict({"align": {"crop_px": 32}})
    with pytest.raises(DatasetError, match="another --out"):
        build_dataset([small_scan], tmp_path / "d.zarr", other)
    with pytest.raises(BuildError, match="no complete field"):
        build_dataset([tmp_path / "empty"], tmp_path / "e.zarr")
