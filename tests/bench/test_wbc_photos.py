"""The photo bench: its match rule, per-set scores, failures and contact sheet on drawn photographs."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from bench.wbc_photos import main, match
from tests.support.drawn_smear import drawn_smear
from tests.support.real_data import WBC_PHOTOS
from trainer.wbc.labelled import Box

DATA = WBC_PHOTOS


def test_match_rule() -> None:
    boxes = [Box(10, 10, 30, 30), Box(100, 100, 120, 120)]
    found, correct = match([(20, 20), (34, 20), (36, 20), (200, 200)], boxes, tol_px=5)
    assert found == [True, False]  # a centre inside box 1 (and one 4 px off its edge) → found
    assert correct == [True, True, False, False]  # 4 px outside counts, 6 px does not
    found, correct = match([], boxes)
    assert found == [False, False] and correct == []


def _write_set(root: Path, wbcs_per_image: list[tuple[tuple[int, int], ...]], extra_label: bool) -> None:
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    for k, wbcs in enumerate(wbcs_per_image):
        img = drawn_smear(seed=k, wbcs=wbcs)
        if extra_label and k == 0:  # clear the red cells under the extra label: plain background
            img[:, 225:275, 35:85] = np.percentile(img[:, 225:275, 35:85], 99, axis=(1, 2), keepdims=True)
        cv2.imwrite(str(root / "images" / f"f{k}.png"), np.moveaxis(img, 0, -1)[..., ::-1].copy())
        labels = [f"0 {x / 400} {y / 300} {24 / 400} {24 / 300}" for x, y in wbcs]
        if extra_label and k == 0:
            labels.append(f"0 {60 / 400} {250 / 300} {24 / 400} {24 / 300}")  # nothing there: a miss
        (root / "labels" / f"f{k}.txt").write_text("\n".join(labels) + "\n")


def test_bench_scores_a_drawn_set(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _write_set(tmp_path / "lab", [((120, 150), (300, 200)), ((200, 100),)], extra_label=True)
    sheet = tmp_path / "sheet.png"
    assert main(["--data", str(tmp_path), "--method", "stain", "--pixel-size-um", "0.39", "--json",
                 "--sheet", str(sheet)]) == 0
    report = json.loads(capsys.readouterr().out)
    s = report["sets"]["lab"]
    assert (s["images"], s["labelled_cells"], s["found"], s["detections"], s["correct"]) == (2, 4, 3, 3, 3)
    assert s["recall"] == 0.75 and s["precision"] == 1.0
    assert "5.0 px" in report["match_rule"]
    assert report["failures"] == [{"set": "lab", "image": "f0.png", "pixel_size_um": 0.39,
                                   "missed": [[60.0, 250.0]], "false_alarms": []}]
    img = cv2.imread(str(sheet))
    assert img is not None and img.shape == (96, 12 * 96, 3) and report["sheet_tiles"] == 1
    assert report["sheet_crops"] == [{"tile": 0, "set": "lab", "image": "f0.png", "kind": "missed", "x": 60.0,
                                      "y": 250.0}]
    assert main(["--data", str(tmp_path), "--method", "stain", "--pixel-size-um", "0.39", "--json",
                 "--sheet", str(sheet), "--sheet-tile", "200"]) == 0
    assert json.loads(capsys.readouterr().out)["sheet_tiles"] == 1
    assert cv2.imread(str(sheet)).shape == (200, 12 * 200, 3)
    assert "other_class_boxes" not in s
    # the same folder with a names file: class 0 is a white cell, the extra label's class 1 a red cell
    labels = tmp_path / "lab/labels/f0.txt"
    labels.write_text(labels.read_text().replace("0 0.15", "1 0.15"))
    (tmp_path / "lab/classes.txt").write_text("WBC\nRBC\n")
    assert main(["--data", str(tmp_path), "--method", "stain", "--pixel-size-um", "0.39", "--json"]) == 0
    s = json.loads(capsys.readouterr().out)["sets"]["lab"]
    assert (s["labelled_cells"], s["other_class_boxes"], s["recall"], s["precision"]) == (3, 1, 1.0, 1.0)
    assert s["other_classes"] == {"RBC": {"boxes": 1, "detected": 0}}
    # a drawn white cell labelled as a red cell: finding it is a false alarm, and the report says on what
    labels = tmp_path / "lab/labels/f1.txt"
    labels.write_text(labels.read_text().replace("0 0.5", "1 0.5"))
    assert main(["--data", str(tmp_path), "--method", "stain", "--pixel-size-um", "0.39", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    s = report["sets"]["lab"]
    assert (s["labelled_cells"], s["detections"], s["correct"], s["other_class_boxes"]) == (2, 3, 2, 2)
    assert s["other_classes"] == {"RBC": {"boxes": 2, "detected": 1}} == report["all"]["other_classes"]


def test_bench_auto_scale_from_red_cells(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _write_set(tmp_path / "lab", [((120, 150),)], extra_label=False)
    assert main(["--data", str(tmp_path), "--method", "stain", "--json"]) == 0
    s = json.loads(capsys.readouterr().out)["sets"]["lab"]
    assert s["recall"] == 1.0 and s["precision"] == 1.0


@pytest.mark.skipif(not DATA.is_dir(), reason=f"real labelled photographs not present at {DATA}")
def test_auto_scale_on_the_real_sets() -> None:
    """Red-cell scale of the shared sets: pig ~0.55–0.7 µm/px (pig red cells are ~6 µm, smaller than
    the human 7.8 µm the estimator assumes), chula-train (2x downscaled) ~0.17–0.21 µm/px."""
    from bench.wbc_photos import set_scale
    from trainer.wbc.labelled import labelled_sets

    sets = labelled_sets(DATA)
    assert 0.5 < set_scale(sets["pig/valid"], n=8) < 0.8
    assert 0.15 < set_scale(sets["chula-train"], n=8) < 0.24


def test_bench_runs_the_cnn_and_times_it_against_net(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _write_set(tmp_path / "lab", [((120, 150), (300, 200))], extra_label=False)
    assert main(["--data", str(tmp_path), "--method", "cnn", "--pixel-size-um", "0.39", "--speed",
                 "--speed-repeats", "1", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["method"] == "cnn" and report["stage2"] == "off" and report["sets"]["lab"]["recall"] == 1.0
    speed = report["speed_1440x900"]
    assert speed["baseline"] == "net" and speed["ms"] > 0 and speed["baseline_ms"] > 0
    assert speed["ratio"] == pytest.approx(speed["ms"] / speed["baseline_ms"], rel=0.05)


def test_bench_relative_threshold_follows_the_sets_reference(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                                             ) -> None:
    _write_set(tmp_path / "lab", [((120, 150), (300, 200)), ((200, 100),)], extra_label=False)
    assert main(["--data", str(tmp_path), "--method", "cnn", "--pixel-size-um", "0.39", "--relative", "--json"]) == 0
    s = json.loads(capsys.readouterr().out)["sets"]["lab"]
    assert s["recall"] == 1.0 and s["precision"] == 1.0
    with pytest.raises(SystemExit, match="needs --method cnn"):
        main(["--data", str(tmp_path), "--method", "net", "--pixel-size-um", "0.39", "--relative"])


def test_best_precision_at_recall_reads_the_score_order() -> None:
    from bench.wbc_photos import best_precision_at_recall

    # 4 boxes: found by detections scoring 0.9, 0.8, 0.3 and never; false alarms at 0.85, 0.5 and 0.2
    scores, correct = [0.9, 0.85, 0.8, 0.5, 0.3, 0.2], [True, False, True, False, True, False]
    best = [0.9, 0.8, 0.3, 0.0]
    assert best_precision_at_recall(scores, correct, best, target=0.5) == (2 / 3, 0.8)  # 0.9 alone: recall 0.25
    assert best_precision_at_recall(scores, correct, best, target=0.75) == (0.6, 0.3)
    assert best_precision_at_recall(scores, correct, best, target=0.97) is None  # one box is never found


def test_curve_run_keeps_the_operating_point_and_adds_the_ranking(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    _write_set(tmp_path / "lab", [((120, 150), (300, 200)), ((200, 100),)], extra_label=True)
    common = ["--data", str(tmp_path), "--method", "cnn", "--pixel-size-um", "0.39", "--json"]
    assert main(common) == 0
    plain = json.loads(capsys.readouterr().out)["sets"]["lab"]
    assert main([*common, "--curve"]) == 0
    curved = json.loads(capsys.readouterr().out)["sets"]["lab"]
    for k in ("found", "detections", "correct", "recall", "precision"):
        assert curved[k] == plain[k], k
    r = curved["ranking"]
    assert r["recall_floor"] == 0.97 and r["max_recall"] == 0.75  # the extra label has nothing under it
    assert r["best_precision"] is None and "ranking" not in plain
    with pytest.raises(SystemExit, match="--curve needs"):
        main([*common, "--method", "stain", "--curve"])


def test_a_set_without_a_scale_is_left_out_and_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _write_set(tmp_path / "lab", [((120, 150),)], extra_label=False)
    (tmp_path / "blank/images").mkdir(parents=True)
    cv2.imwrite(str(tmp_path / "blank/images/a.png"), np.full((100, 100, 3), 220, np.uint8))
    assert main(["--data", str(tmp_path), "--method", "stain", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert list(report["sets"]) == ["lab"] and "--pixel-size-um blank=VALUE" in report["skipped_sets"]["blank"]
    assert main(["--data", str(tmp_path), "--method", "stain", "--sets", "blank"]) == 2
    assert "no set could be scored" in capsys.readouterr().err
    assert main(["--data", str(tmp_path / "none")]) == 2
    assert "expected a folder of labelled sets" in capsys.readouterr().err


def test_an_unreadable_photograph_is_left_out_and_counted(tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    _write_set(tmp_path / "lab", [((120, 150),), ((200, 100),)], extra_label=False)
    (tmp_path / "lab/images/f9.png").write_bytes(b"not a png")
    assert main(["--data", str(tmp_path), "--method", "stain", "--json"]) == 0
    s = json.loads(capsys.readouterr().out)["sets"]["lab"]
    assert (s["images"], s["unreadable_images"], s["labelled_cells"], s["recall"]) == (2, 1, 2, 1.0)


def test_pixel_sizes_are_refused_by_name(capsys: pytest.CaptureFixture[str]) -> None:
    for spec, said in (("abc", "expected auto, a positive µm per pixel"), ("0", "expected auto, a positive µm"),
                       ("lab=x", "expected SET=µm per pixel, found 'lab=x'"), ("lab=-1", "a positive size")):
        with pytest.raises(SystemExit):
            main(["--data", "/nonexistent", "--pixel-size-um", spec])
        assert said in capsys.readouterr().err
