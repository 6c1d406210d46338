"""``bench/wbc_closeups.py``: close-ups cut around a labelled white cell, boxes carried over, read by the bench."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from bench import wbc_closeups, wbc_photos
from tests.support.drawn_smear import drawn_folder
from trainer.wbc.labelled import Box, labelled_sets, read_boxes


def test_the_window_holds_the_cell_and_boxes_are_clipped_to_it() -> None:
    rng = np.random.default_rng(0)
    cell = Box(100, 80, 140, 120, "0")
    for _ in range(20):
        x0, y0 = wbc_closeups.window(cell, 400, 300, (100, 80), rng)
        assert 0 <= x0 <= 300 and 0 <= y0 <= 220
        assert x0 + 30 <= 120 <= x0 + 70 and y0 + 24 <= 100 <= y0 + 56  # the centre in the middle 40 %
    # at the image's corner the window is shifted inwards, the centre still inside
    assert wbc_closeups.window(Box(0, 0, 20, 20, "0"), 400, 300, (100, 80), rng) == (0, 0)
    others = [Box(95, 0, 125, 10, "1"), Box(300, 200, 330, 230, "0"), Box(170, 115, 200, 140, "1")]
    inside = wbc_closeups.boxes_in([cell, *others], 90, 50, (100, 80))
    # window x 90-190, y 50-130: the cell as it is, the red cell at its lower edge clipped, the rest outside
    assert inside == [Box(10, 30, 50, 70, "0"), Box(80, 65, 100, 80, "1")]
    assert wbc_closeups.boxes_in([Box(186, 60, 189, 80, "0")], 90, 50, (100, 80)) == []  # 3 px wide: dropped


def test_closeups_of_a_drawn_set_keep_their_cells(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    drawn_folder(tmp_path / "data" / "lab", n=2)  # 400x300 px at 0.39 µm/px, two white cells per photograph
    out = tmp_path / "close"
    assert wbc_closeups.main(["--data", str(tmp_path / "data"), "--out", str(out), "--pixel-size-um", "lab=0.39",
                              "--window-um", "60x45", "--size", "308x230"]) == 0
    report = json.loads((out / "closeups.json").read_text())["sets"]["lab"]
    assert report["images"] == 2 and report["window_px"] == [154, 115]
    assert report["pixel_size_um"] == pytest.approx(0.195)
    images = labelled_sets(out)["lab"]
    assert [p.name for p in images] == ["s0.jpg", "s1.jpg"]
    boxes = read_boxes(images[0], 308, 230)
    assert len(boxes) == 1 and 0.3 * 308 <= (boxes[0].x0 + boxes[0].x1) / 2 <= 0.7 * 308
    assert boxes[0].x1 - boxes[0].x0 == pytest.approx(2 * 40, abs=1)  # the 40 px box, twice as large
    capsys.readouterr()
    assert wbc_photos.main(["--data", str(out), "--pixel-size-um", "0.195", "--json"]) == 0
    s = json.loads(capsys.readouterr().out)["sets"]["lab"]
    assert (s["labelled_cells"], s["found"]) == (2, 2)


def test_bad_arguments_are_refused_by_name(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    drawn_folder(tmp_path / "data" / "lab", n=1)
    for args, said in ((["--pixel-size-um", "other=0.4"], "sets ['other']"),
                       (["--pixel-size-um", "lab=0.4", "--window-um", "55"], "--window-um: expected WxH"),
                       (["--pixel-size-um", "lab=-1"], "expected a positive size")):
        with pytest.raises(SystemExit):
            wbc_closeups.main(["--data", str(tmp_path / "data"), "--out", str(tmp_path / "o"), *args])
        assert said in capsys.readouterr().err
    (tmp_path / "o").mkdir()
    with pytest.raises(SystemExit):
        wbc_closeups.main(["--data", str(tmp_path / "data"), "--out", str(tmp_path / "o"),
                           "--pixel-size-um", "lab=0.4"])
    assert "exists" in capsys.readouterr().err
