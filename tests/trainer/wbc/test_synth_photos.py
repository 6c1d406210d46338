"""Labelled white-cell photographs from the simulator, read back as the trainers read a real folder."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from sim.maps import WBC_TYPES
from trainer.errors import TrainerError
from trainer.wbc.labelled import is_white_cell, labelled_sets, read_boxes
from trainer.wbc.synth_photos import CLASSES, field_stop, main, write_folder, yolo_lines


def _cell(kind: str, x: float, y: float, r_um: float = 3.0) -> dict[str, object]:
    return {"type": kind, "center_px": [x, y], "radius_um": r_um}


def test_boxes_cells_centred_on_the_frame_clipped_and_typed() -> None:
    cells = [_cell("lymphocyte", 50, 60), _cell("basophil", 2, 30), _cell("neutrophil", -3, 30),
             _cell("smudge", 70, 70), _cell("monocyte", 99.5, 10)]
    lines = [line.split() for line in yolo_lines(cells, 100, 0.5)]
    assert [int(v[0]) for v in lines] == [CLASSES.index(t) for t in ("lymphocyte", "basophil", "smudge", "monocyte")]
    assert CLASSES[:-1] == WBC_TYPES and not is_white_cell(CLASSES[-1])  # a smudge cell's box is a non-cell's
    cx, cy, w, h = map(float, lines[0][1:])
    assert (cx, cy, w, h) == pytest.approx((0.5, 0.6, 0.12, 0.12))
    cx, _, w, _ = map(float, lines[1][1:])  # cut by the left edge: from 0 to 8 px
    assert (cx, w) == pytest.approx((0.04, 0.08))
    assert all(0 <= float(v) <= 1 for line in lines for v in line[1:])


def test_a_field_stop_darkens_beyond_its_edge_and_its_hidden_cells_are_not_boxed() -> None:
    rng = np.random.default_rng(1)
    for _ in range(5):
        t = field_stop(200, rng)
        assert t.shape == (200, 200) and t.min() >= 0.0 and t.max() <= 1.0
        assert t[100, 100] > 0.5  # the centre is seen
        assert min(t[0, 0], t[0, -1], t[-1, 0], t[-1, -1]) < 0.01  # the corners are beyond the edge
        assert 0.05 < float((t < 0.5).mean()) < 0.7
    half = np.ones((100, 100), np.float32)
    half[:, 60:] = 0.0
    cells = [_cell("lymphocyte", 30, 50), _cell("monocyte", 80, 50)]
    assert [line.split()[0] for line in yolo_lines(cells, 100, 0.5, half)] == [str(WBC_TYPES.index("lymphocyte"))]
    assert len(yolo_lines(cells, 100, 0.5)) == 2


def test_writes_a_folder_the_trainers_read(tmp_path: Path) -> None:
    out = tmp_path / "synth"
    summary = write_folder(out, fields=2, size_px=128, seed=3, wbc_per_mm2=3000.0, smear={"platelets_per_rbc": 0.2})
    images = labelled_sets(out)["synth"]
    assert [p.name for p in images] == ["synth00000.png", "synth00001.png"]
    boxes = [read_boxes(p, 128, 128) for p in images]
    assert sum(len(b) for b in boxes) == sum(summary["cells"].values()) >= 1
    assert all(0 <= (b.x0 + b.x1) / 2 < 128 and 0 <= (b.y0 + b.y1) / 2 < 128 for bs in boxes for b in bs)
    assert cv2.imread(str(images[0])).shape == (128, 128, 3)
    assert (out / "classes.txt").read_text().split() == [*WBC_TYPES, "smudge"]
    written = json.loads((out / "synth.json").read_text())
    assert written["pixel_size_um"] == pytest.approx(0.293, abs=1e-3)
    assert written["smear"]["platelets_per_rbc"] == 0.2 and written["smear"]["wbc_fractions"] == [0.2] * 5
    with pytest.raises(TrainerError, match="already holds images"):
        write_folder(out, fields=1, size_px=128)
    smudged = tmp_path / "smudged"  # smudge cells boxed as non-cells: the trainers skip them, the bench counts them
    summary = write_folder(smudged, fields=4, size_px=128, seed=3, wbc_per_mm2=3000.0, smear={"smudge_per_wbc": 1.0})
    images = labelled_sets(smudged)["smudged"]
    every = [b.label for p in images for b in read_boxes(p, 128, 128, white_cells_only=False)]
    assert every.count("smudge") == summary["smudge_cells"] >= 1
    assert len(every) - every.count("smudge") == sum(len(read_boxes(p, 128, 128)) for p in images)
    stopped = tmp_path / "stopped"
    write_folder(stopped, fields=1, size_px=128, seed=3, wbc_per_mm2=3000.0, field_stop_share=1.0)
    dark = cv2.imread(str(labelled_sets(stopped)["stopped"][0])).max(axis=2) < 8
    assert 0.05 < dark.mean() < 0.7 and dark[0, 0] and not dark[64, 64]  # black beyond the stop's edge


def test_refuses_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(TrainerError, match="differential"):
        write_folder(tmp_path / "a", fields=1, differential="skewed")
    with pytest.raises(TrainerError, match="lab variation"):
        write_folder(tmp_path / "c", fields=1, lab_variation=1.5)
    with pytest.raises(TrainerError, match="field-stop share"):
        write_folder(tmp_path / "f", fields=1, field_stop_share=2.0)
    with pytest.raises(SystemExit, match="at least 1 field"):
        main(["--out", str(tmp_path / "b"), "--fields", "0"])
    with pytest.raises(SystemExit, match="platelet_per_rbc"):  # a misspelt simulator field, refused by name
        main(["--out", str(tmp_path / "d"), "--fields", "1", "--smear", "platelet_per_rbc=0.2"])
    with pytest.raises(SystemExit, match="KEY=NUMBER"):
        main(["--out", str(tmp_path / "e"), "--fields", "1", "--smear", "platelets_per_rbc"])
    assert not (tmp_path / "d" / "images").exists()  # refused before anything is written
