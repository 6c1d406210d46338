"""YOLO txt and Pascal VOC xml label readers, and labelled-folder discovery."""

from __future__ import annotations

from pathlib import Path

import pytest

from trainer.errors import TrainerError
from trainer.wbc.labelled import Box, is_white_cell, labelled_sets, read_boxes, read_voc, read_yolo, yolo_class_names


def test_yolo_boxes_are_in_pixels(tmp_path: Path) -> None:
    f = tmp_path / "a.txt"
    f.write_text("0 0.5 0.25 0.1 0.2\n\n3 0.1 0.9 0.2 0.2\n")
    boxes = read_yolo(f, 400, 200)
    assert (boxes[0].x0, boxes[0].y0, boxes[0].x1, boxes[0].y1) == pytest.approx((180.0, 30.0, 220.0, 70.0))
    assert boxes[0].label == "0"
    assert boxes[1].label == "3" and boxes[1].x0 == pytest.approx(0.0) and boxes[1].y1 == pytest.approx(200.0)


def test_yolo_errors_name_the_line(tmp_path: Path) -> None:
    f = tmp_path / "bad.txt"
    f.write_text("0 0.5 0.5 0.1 0.1\n0 0.5 oops 0.1 0.1\n")
    with pytest.raises(TrainerError, match=r"bad.txt:2: expected numbers"):
        read_yolo(f, 10, 10)
    f.write_text("0 0.5\n")
    with pytest.raises(TrainerError, match=r"bad.txt:1: expected 'class cx cy w h'"):
        read_yolo(f, 10, 10)


def test_voc_boxes(tmp_path: Path) -> None:
    f = tmp_path / "a.xml"
    f.write_text("<annotation><object><name>WBC</name><bndbox><xmin>10</xmin><ymin>20</ymin>"
                 "<xmax>30</xmax><ymax>44</ymax></bndbox></object><object><name>RBC</name><bndbox>"
                 "<xmin>1</xmin><ymin>2</ymin><xmax>3</xmax><ymax>4</ymax></bndbox></object></annotation>")
    assert read_voc(f) == [Box(10, 20, 30, 44, "WBC"), Box(1, 2, 3, 4, "RBC")]
    f.write_text("<annotation><object><name>WBC</name></object></annotation>")
    with pytest.raises(TrainerError, match="without <bndbox>"):
        read_voc(f)


def test_box_contains_with_tolerance() -> None:
    b = Box(10, 10, 20, 20)
    assert b.contains(15, 15) and b.contains(20, 20) and not b.contains(24, 15)
    assert b.contains(24, 15, tol_px=5) and not b.contains(26, 15, tol_px=5)


def test_folders_and_label_lookup(tmp_path: Path) -> None:
    for sub in ("pig/train", "pig/test", "human"):
        (tmp_path / sub / "images").mkdir(parents=True)
        (tmp_path / sub / "images" / "x.jpg").write_bytes(b"")
    (tmp_path / "pig/train/labels").mkdir()
    (tmp_path / "pig/train/labels/x.txt").write_text("0 0.5 0.5 0.5 0.5\n")
    (tmp_path / "human/annotations").mkdir()
    (tmp_path / "human/annotations/x.xml").write_text(
        "<annotation><object><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>2</xmax><ymax>2</ymax></bndbox>"
        "</object></annotation>")
    # Pascal VOC's own layout (BCCD as distributed): JPEGImages/ beside Annotations/
    (tmp_path / "bccd/JPEGImages").mkdir(parents=True)
    (tmp_path / "bccd/JPEGImages/b.jpg").write_bytes(b"")
    (tmp_path / "bccd/Annotations").mkdir()
    (tmp_path / "bccd/Annotations/b.xml").write_text(
        "<annotation><object><name>WBC</name><bndbox><xmin>5</xmin><ymin>6</ymin><xmax>7</xmax><ymax>8</ymax>"
        "</bndbox></object></annotation>")
    sets = labelled_sets(tmp_path)
    assert sorted(sets) == ["bccd", "human", "pig/test", "pig/train"]
    assert read_boxes(sets["bccd"][0], 100, 100) == [Box(5, 6, 7, 8, "WBC")]
    assert read_boxes(sets["pig/train"][0], 100, 100) == [Box(25, 25, 75, 75, "0")]
    assert read_boxes(sets["human"][0], 100, 100) == [Box(1, 1, 2, 2, "wbc")]
    assert read_boxes(sets["pig/test"][0], 100, 100) == []
    with pytest.raises(TrainerError, match=r"no 'images' \(or 'JPEGImages'\) folder"):
        labelled_sets(tmp_path / "pig/train/labels")


def test_only_white_cells_are_read_from_folders_that_box_every_cell(tmp_path: Path) -> None:
    """BCCD-style VOC (WBC / RBC / Platelets) and YOLO folders whose names file lists such classes: only the
    white cells are cells; a class number with no names file still is one."""
    assert is_white_cell("WBC") and is_white_cell("white blood cell") and is_white_cell("Neutrophil")
    assert is_white_cell("3") and is_white_cell("band_neutrophil")
    for other in ("RBC", "Red Blood Cell", "Platelets", "giant platelet", "NRBC", "smudge cell", "artefact"):
        assert not is_white_cell(other), other
    voc = tmp_path / "bccd"
    (voc / "images").mkdir(parents=True)
    (voc / "Annotations").mkdir()
    objects = "".join(f"<object><name>{n}</name><bndbox><xmin>{x}</xmin><ymin>1</ymin><xmax>{x + 9}</xmax>"
                      f"<ymax>9</ymax></bndbox></object>" for n, x in (("RBC", 0), ("WBC", 20), ("Platelets", 40)))
    (voc / "Annotations/a.xml").write_text(f"<annotation>{objects}</annotation>")
    assert [b.label for b in read_boxes(voc / "images/a.jpg", 64, 64)] == ["WBC"]
    assert len(read_boxes(voc / "images/a.jpg", 64, 64, white_cells_only=False)) == 3
    # exported YOLO layout: data.yaml above the split folders
    root = tmp_path / "yolo"
    (root / "train/labels").mkdir(parents=True)
    (root / "train/labels/a.txt").write_text("0 0.5 0.5 0.1 0.1\n1 0.2 0.2 0.1 0.1\n2 0.8 0.8 0.1 0.1\n")
    (root / "data.yaml").write_text("train: train/images\nnc: 3\nnames: ['Platelets', 'RBC', 'WBC']\n")
    assert [b.label for b in read_boxes(root / "train/images/a.jpg", 100, 100)] == ["WBC"]
    assert yolo_class_names(root / "train/labels") == ("Platelets", "RBC", "WBC")
    # classes.txt in the set folder (as trainer.wbc.synth_photos writes) wins; {index: name} maps are read too
    (root / "train/classes.txt").write_text("neutrophil\nlymphocyte\nplatelet\n")
    (root / "val/labels").mkdir(parents=True)
    (root / "val/data.yaml").write_text("names:\n  0: wbc\n  1: rbc\n")
    assert yolo_class_names(root / "val/labels") == ("wbc", "rbc")
    labels = [b.label for b in read_boxes(root / "train/images/a.jpg", 100, 100)]
    assert labels == ["neutrophil", "lymphocyte"]
    (root / "val/labels/b.txt").write_text("0 0.5 0.5 0.1 0.1\n5 0.2 0.2 0.1 0.1\n")
    with pytest.raises(TrainerError, match=r"b.txt:2: class '5', but the folder's names file lists 2 classes"):
        read_boxes(root / "val/images/b.jpg", 100, 100)
    (root / "val/data.yaml").write_text("names: [unclosed\n")
    with pytest.raises(TrainerError, match="not valid YAML"):
        read_boxes(root / "val/images/b.jpg", 100, 100)
