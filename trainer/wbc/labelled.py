"""Labelled photograph folders: image files with white-cell boxes in YOLO txt or Pascal VOC xml.

A folder holds ``images/`` (or VOC's ``JPEGImages/``) and ``labels/`` (YOLO: ``NAME.txt`` with ``class cx cy w h``
per line, normalised to the image size) or ``annotations/`` / ``labels/`` with VOC ``NAME.xml`` (``<object>``
``<bndbox>`` ``xmin ymin xmax ymax`` in pixels). Both readers return boxes in pixels as
``(x0, y0, x1, y1)`` floats; images without a label file have no cells.

Folders that box every kind of cell (BCCD-style VOC ``WBC`` / ``RBC`` / ``Platelets``, or YOLO
folders whose ``classes.txt`` or ``data.yaml`` names such classes) are read as white cells only:
:func:`read_boxes` leaves out boxes whose class names red cells, platelets, smudge cells or
artefacts (:func:`is_white_cell`). A YOLO class number without a names file is a white cell.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from trainer.errors import TrainerError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp")
IMAGE_DIRS = ("images", "jpegimages")  # a set's photographs (YOLO exports; Pascal VOC)
# A class whose name has a word starting with one of these is not a white cell (nucleated red cells
# and smudge cells are not counted as white cells either).
NOT_WHITE_CELL = ("rbc", "nrbc", "red", "erythrocyte", "platelet", "thrombocyte", "plt", "smudge", "artifact",
                  "artefact", "debris")


def is_white_cell(label: str) -> bool:
    """Whether a box's class (a name, or a number when the folder names none) stands for a white cell."""
    return not any(w.startswith(n) for w in re.findall(r"[a-z]+", label.lower()) for n in NOT_WHITE_CELL)


@dataclass(frozen=True)
class Box:
    """A labelled cell in pixels (column x, row y); ``label`` is the file's class (name or index)."""

    x0: float
    y0: float
    x1: float
    y1: float
    label: str = "wbc"

    def contains(self, x: float, y: float, tol_px: float = 0.0) -> bool:
        """Whether the point lies inside the box grown by ``tol_px`` on every side."""
        return self.x0 - tol_px <= x <= self.x1 + tol_px and self.y0 - tol_px <= y <= self.y1 + tol_px


def match(points: list[tuple[float, float]], boxes: list[Box], tol_px: float = 5.0) -> tuple[list[bool], list[bool]]:
    """The photo bench's match rule: ``(found per box, correct per point)`` — a box is found when a point
    lies inside it grown by ``tol_px``; a point is correct when it lies inside a box grown the same way."""
    found = [any(b.contains(x, y, tol_px) for x, y in points) for b in boxes]
    correct = [any(b.contains(x, y, tol_px) for b in boxes) for x, y in points]
    return found, correct


def yolo_class_names(labels_dir: Path) -> tuple[str, ...] | None:
    """The class names of the YOLO files in ``labels_dir``: a ``classes.txt`` (one per line) there or in
    its set folder, else the ``names`` of a ``data.yaml`` / ``dataset.yaml`` in the set folder or the one
    above it (the layout of exported YOLO datasets); None when there is none."""
    set_dir = labels_dir.parent
    for d in (labels_dir, set_dir):
        f = d / "classes.txt"
        if f.is_file():
            return tuple(line.strip() for line in f.read_text().splitlines() if line.strip())
    for d in (set_dir, set_dir.parent):
        for name in ("data.yaml", "dataset.yaml", "data.yml"):
            if (d / name).is_file():
                return _yaml_names(d / name)
    return None


def _yaml_names(path: Path) -> tuple[str, ...] | None:
    import yaml

    try:
        doc = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise TrainerError(f"{path}: not valid YAML ({exc}); expected a YOLO data file with 'names'") from exc
    names = doc.get("names") if isinstance(doc, dict) else None
    if names is None:
        return None
    if isinstance(names, dict) and all(isinstance(k, int) for k in names):
        names = [names[k] for k in sorted(names)]
    if not isinstance(names, list):
        raise TrainerError(f"{path}: 'names' should be a list or a {{index: name}} map, found {names!r}")
    return tuple(str(n) for n in names)


def read_yolo(path: Path, width: int, height: int, names: tuple[str, ...] | None = None) -> list[Box]:
    """Boxes of a YOLO txt file for an image of ``width`` x ``height`` px; with ``names`` each box's
    label is its class's name."""
    boxes = []
    for n, line in enumerate(path.read_text().splitlines(), start=1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) < 5:
            raise TrainerError(f"{path}:{n}: expected 'class cx cy w h', found {line!r}")
        try:
            cx, cy, w, h = (float(v) for v in parts[1:5])
        except ValueError as exc:
            raise TrainerError(f"{path}:{n}: expected numbers after the class, found {line!r}") from exc
        label = parts[0]
        if names is not None:
            if not label.isdigit() or int(label) >= len(names):
                raise TrainerError(f"{path}:{n}: class {label!r}, but the folder's names file lists {len(names)} "
                                   f"classes ({', '.join(names)}); fix the label or the names file")
            label = names[int(label)]
        boxes.append(Box((cx - w / 2) * width, (cy - h / 2) * height, (cx + w / 2) * width, (cy + h / 2) * height,
                         label))
    return boxes


def yolo_text(boxes: list[Box], width: int, height: int, classes: list[str]) -> str:
    """YOLO txt (``class cx cy w h``, normalised) of ``boxes`` in a ``width`` x ``height`` image; a box's class is
    its label's index in ``classes``, appended there when new (write them to ``classes.txt`` beside the files)."""
    lines = []
    for b in boxes:
        if b.label not in classes:
            classes.append(b.label)
        lines.append(f"{classes.index(b.label)} {(b.x0 + b.x1) / 2 / width:.6f} {(b.y0 + b.y1) / 2 / height:.6f} "
                     f"{(b.x1 - b.x0) / width:.6f} {(b.y1 - b.y0) / height:.6f}\n")
    return "".join(lines)


def read_voc(path: Path) -> list[Box]:
    """Boxes of a Pascal VOC xml file (pixel corners as written)."""
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as exc:
        raise TrainerError(f"{path}: not valid VOC xml ({exc})") from exc
    boxes = []
    for obj in root.iter("object"):
        bb = obj.find("bndbox")
        if bb is None:
            raise TrainerError(f"{path}: an <object> without <bndbox>")
        try:
            x0, y0, x1, y1 = (float(bb.findtext(k, "")) for k in ("xmin", "ymin", "xmax", "ymax"))
        except ValueError as exc:
            raise TrainerError(f"{path}: <bndbox> needs numeric xmin ymin xmax ymax") from exc
        boxes.append(Box(x0, y0, x1, y1, obj.findtext("name", "wbc")))
    return boxes


def label_file(image: Path) -> Path | None:
    """The YOLO or VOC label file of an image in ``…/images/NAME.ext`` (or ``…/JPEGImages/``), or None."""
    stem, parent = image.stem, image.parent.parent
    for sub, ext in (("labels", ".txt"), ("labels", ".xml"), ("annotations", ".xml"), ("Annotations", ".xml")):
        cand = parent / sub / (stem + ext)
        if cand.is_file():
            return cand
    for ext in (".txt", ".xml"):  # labels beside the image
        cand = image.with_suffix(ext)
        if cand.is_file():
            return cand
    return None


def read_boxes(image: Path, width: int, height: int, white_cells_only: bool = True) -> list[Box]:
    """The labelled white cells of ``image`` (size ``width`` x ``height``; every box with
    ``white_cells_only=False``), [] when it has no label file."""
    lf = label_file(image)
    if lf is None:
        return []
    boxes = read_yolo(lf, width, height, yolo_class_names(lf.parent)) if lf.suffix == ".txt" else read_voc(lf)
    return [b for b in boxes if is_white_cell(b.label)] if white_cells_only else boxes


def labelled_sets(root: Path) -> dict[str, list[Path]]:
    """Every folder under ``root`` holding ``images/`` (or Pascal VOC's ``JPEGImages/``, as BCCD ships): set
    name (relative path) → sorted image paths."""
    if not root.is_dir():
        raise TrainerError(f"{root}: expected a folder of labelled sets (…/images + …/labels), found none")
    sets = {}
    for images in sorted(p for p in root.rglob("*") if p.is_dir() and p.name.lower() in IMAGE_DIRS):
        files = sorted(p for p in images.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if files:
            name = images.parent.relative_to(root).as_posix()
            sets[name if name != "." else root.name] = files
    if not sets:
        raise TrainerError(f"{root}: no 'images' (or 'JPEGImages') folder with photographs below it")
    return sets
