"""``stainless-train build-dataset``, ``find-wbc`` and ``inspect`` through the real entry point."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from sim.accuracy import jitter_to_srgb8, match_cells
from trainer.cli import main


def test_build_then_inspect(small_scan: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "d.zarr"
    assert main(["build-dataset", str(small_scan), "--out", str(out), "--hr", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["fields"]["fields_used"] == 2
    for key in ("cells", "registration", "alignment_ssim", "pls_misalignment_px", "hr_match_score"):
        assert key in report
    sheet = tmp_path / "sheet.png"
    assert main(["inspect", str(out), "--out", str(sheet), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert sum(info["per_split"].values()) == info["samples"] == report["samples_total"]
    img = cv2.imread(str(sheet))
    assert img is not None and img.shape[1] == 3 * 96  # brightfield, target, 100x (le18 has no darkfield LED)


def test_find_wbc_on_a_photograph(stained_frames: list, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, rgb, truth = stained_frames[0]
    photo = jitter_to_srgb8(rgb, np.random.default_rng(3))
    path = tmp_path / "smear.jpg"
    cv2.imwrite(str(path), np.moveaxis(photo, 0, -1)[..., ::-1].copy(), [cv2.IMWRITE_JPEG_QUALITY, 85])
    assert main(["find-wbc", str(path), "--pixel-size-um", "0.293", "--json"]) == 0
    cells = json.loads(capsys.readouterr().out)["cells"]
    _, false_pos, missed = match_cells([SimpleNamespace(**c) for c in cells], truth)
    assert missed == 0 and false_pos <= 1
    for c in cells:
        assert set(c) == {"x", "y", "bbox", "area_um2"} and c["bbox"][0] <= c["x"] <= c["bbox"][2]


def test_find_wbc_errors_are_clear(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    grey = tmp_path / "grey.png"
    cv2.imwrite(str(grey), np.zeros((16, 16), np.uint8))
    assert main(["find-wbc", str(grey), "--pixel-size-um", "0.3"]) == 2
    assert "expected an RGB image" in capsys.readouterr().err
    assert main(["find-wbc", str(tmp_path / "missing.png"), "--pixel-size-um", "0.3"]) == 2
    assert main(["inspect", str(tmp_path / "none.zarr")]) == 2
    assert "not a stainless dataset" in capsys.readouterr().err
