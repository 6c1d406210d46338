"""``stainless-train build-dataset``, ``find-wbc`` and ``inspect`` through the real entry point."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from sim.accuracy import jitter_to_srgb8, match_cells
from tests.support.drawn_smear import drawn_smear
from trainer.cli import main
from trainer.wbc.labelled import read_boxes


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
    # The simulator's nuclei are nearly neutral in OD, unlike real ones: the od method is the one tuned on it.
    assert main(["find-wbc", str(path), "--pixel-size-um", "0.293", "--method", "od", "--json"]) == 0
    cells = json.loads(capsys.readouterr().out)["cells"]
    _, false_pos, missed = match_cells([SimpleNamespace(**c) for c in cells], truth)
    assert missed == 0 and false_pos <= 1
    for c in cells:
        assert set(c) == {"x", "y", "bbox", "area_um2", "cut"} and c["bbox"][0] <= c["x"] <= c["bbox"][2]


def test_find_wbc_auto_scale_and_cut_cells(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Default finder (cnn + its shipped check) on a drawn photograph; the scale comes from the 20 px red cells."""
    path = tmp_path / "drawn.png"
    img = drawn_smear(seed=3, wbcs=((120, 150), (388, 100)))  # the second one cut by the right border
    cv2.imwrite(str(path), np.moveaxis(img, 0, -1)[..., ::-1].copy())
    assert main(["find-wbc", str(path), "--pixel-size-um", "auto", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["method"] == "cnn" and out["stage2"] == "shipped" and out["scale"].startswith("auto")
    assert out["pixel_size_um"] == pytest.approx(7.8 / 20, rel=0.06)
    cells = sorted(out["cells"], key=lambda c: c["x"])
    assert [c["cut"] for c in cells] == [False, True]
    assert abs(cells[0]["x"] - 120) < 12 and abs(cells[0]["y"] - 150) < 12
    blank = tmp_path / "blank.png"
    cv2.imwrite(str(blank), np.full((64, 64, 3), 230, np.uint8))
    assert main(["find-wbc", str(blank), "--pixel-size-um", "auto"]) == 2
    assert "single red cells, need 5" in capsys.readouterr().err
    assert main(["find-wbc", str(blank), "--pixel-size-um", "big"]) == 2
    assert "expected µm per pixel or 'auto'" in capsys.readouterr().err


def test_find_wbc_on_a_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A folder's images share one `auto` scale, pooled from their red cells; an unreadable file is reported and
    the rest are still searched, by several processes or by one."""
    folder = tmp_path / "slide" / "images"
    folder.mkdir(parents=True)
    for k in range(3):
        img = drawn_smear(seed=k, wbcs=((120, 150),))
        cv2.imwrite(str(folder / f"f{k}.png"), np.moveaxis(img, 0, -1)[..., ::-1].copy())
    (folder / "f3.jpg").write_bytes(b"not a jpeg")
    (folder / "notes.txt").write_text("not an image")
    labels = tmp_path / "slide" / "labels"
    args = ["find-wbc", str(tmp_path / "slide"), "--pixel-size-um", "auto", "--labels", str(labels), "--json"]
    assert main([*args, "--workers", "2"]) == 1
    cap = capsys.readouterr()
    out = json.loads(cap.out)
    assert out["pixel_size_um"] == pytest.approx(7.8 / 20, rel=0.06) and out["scale"].startswith("auto")
    assert [Path(r["image"]).name for r in out["images"]] == ["f0.png", "f1.png", "f2.png", "f3.jpg"]
    assert out["errors"] == 1 and "cannot read" in out["images"][3]["error"] and "f3.jpg: skipped" in cap.err
    for r in out["images"][:3]:
        assert any(abs(c["x"] - 120) < 12 and abs(c["y"] - 150) < 12 for c in r["cells"])
    assert out["cells_total"] == sum(len(r["cells"]) for r in out["images"][:3])
    # Searched by two processes or by this one alone: the same report, in order.
    assert main([*args, "--workers", "1"]) == 1
    assert json.loads(capsys.readouterr().out) == out
    assert main([*args, "--workers", "-1"]) == 2
    assert "--workers: expected 0 (one per usable core) or more, found -1" in capsys.readouterr().err
    # The labels make a labelled folder the tools read back: one box per cell, where the cell was found.
    assert (labels / "classes.txt").read_text().split() == ["wbc", "wbc_cut"] and not (labels / "f3.txt").exists()
    for r in out["images"][:3]:
        h, w = cv2.imread(r["image"]).shape[:2]
        boxes = sorted((b.x0, b.y0, b.x1, b.y1) for b in read_boxes(Path(r["image"]), w, h))
        cells = sorted(tuple(c["bbox"]) for c in r["cells"])
        assert len(boxes) == len(cells) > 0
        assert all(b == pytest.approx(c, abs=0.01) for b, c in zip(boxes, cells, strict=True))
    # Files and folders together, a given scale: every image searched at it.
    assert main(["find-wbc", str(folder / "f0.png"), str(folder / "f1.png"), "--pixel-size-um", "0.39"]) == 0
    text = capsys.readouterr().out
    assert "pixel size 0.3900 µm (given)" in text and "white cells in 2 images" in text
    assert main(["find-wbc", str(folder / "f0.png"), str(tmp_path / "slide"), "--pixel-size-um", "0.39",
                 "--labels", str(tmp_path / "l2")]) == 2
    assert "images named f0 come from more than one folder" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["find-wbc", str(tmp_path / "empty"), "--pixel-size-um", "0.39"]) == 2
    assert "expected image files" in capsys.readouterr().err


def test_find_wbc_errors_are_clear(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    grey = tmp_path / "grey.png"
    cv2.imwrite(str(grey), np.zeros((16, 16), np.uint8))
    assert main(["find-wbc", str(grey), "--pixel-size-um", "0.3"]) == 2
    assert "expected an RGB image" in capsys.readouterr().err
    assert main(["find-wbc", str(tmp_path / "missing.png"), "--pixel-size-um", "0.3"]) == 2
    assert main(["inspect", str(tmp_path / "none.zarr")]) == 2
    assert "not a stainless dataset" in capsys.readouterr().err


def test_find_wbc_second_stage_choice(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "drawn.png"
    cv2.imwrite(str(path), np.moveaxis(drawn_smear(seed=1), 0, -1)[..., ::-1].copy())
    assert main(["find-wbc", str(path), "--pixel-size-um", "0.39", "--method", "net", "--stage2", "shipped",
                 "--json"]) == 0
    cells = sorted(json.loads(capsys.readouterr().out)["cells"], key=lambda c: c["x"])
    assert len(cells) == 2
    for c, (x, y) in zip(cells, [(120, 150), (300, 200)], strict=True):
        assert abs(c["x"] - x) < 12 and abs(c["y"] - y) < 12
    assert main(["find-wbc", str(path), "--pixel-size-um", "0.39", "--method", "net", "--stage2", "on"]) == 2
    err = capsys.readouterr().err
    assert "wbc.stage2: expected off | shipped | a .npz (net) or .onnx (cnn) path, found 'on'" in err
    assert main(["find-wbc", str(path), "--pixel-size-um", "0.39", "--method", "cnn", "--stage2", "s.npz"]) == 2
    assert "wbc.stage2: expected off, shipped or an .onnx verifier with method 'cnn'" in capsys.readouterr().err
    assert main(["find-wbc", str(path), "--pixel-size-um", "0.39", "--method", "cnn", "--stage2", "shipped",
                 "--json"]) == 0
    cells = json.loads(capsys.readouterr().out)["cells"]
    for x, y in [(120, 150), (300, 200)]:  # the verifier keeps both drawn cells (see test_wbc_verify)
        assert any(abs(c["x"] - x) < 12 and abs(c["y"] - y) < 12 for c in cells)
