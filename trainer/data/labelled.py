"""Labelled photograph folders: image files with white-cell boxes in YOLO txt or Pascal VOC xml.

A folder holds ``images/`` and ``labels/`` (YOLO: ``NAME.txt`` with ``class cx cy w h`` per line,
normalised to the image size) or ``annotations/`` / ``labels/`` with VOC ``NAME.xml`` (``<object>``
``<bndbox>`` ``xmin ymin xmax ymax`` in pixels). Both readers return boxes in pixels as
``(x0, y0, x1, y1)`` floats; images without a label file have no cells.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from trainer.errors import TrainerError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp")


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


def read_yolo(path: Path, width: int, height: int) -> list[Box]:
    """Boxes of a YOLO txt file for an image of ``width`` x ``height`` px."""
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
        boxes.append(Box((cx - w / 2) * width, (cy - h / 2) * height, (cx + w / 2) * width, (cy + h / 2) * height,
                         parts[0]))
    return boxes


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
    """The YOLO or VOC label file of an image in ``…/images/NAME.ext``, or None."""
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


def read_boxes(image: Path, width: int, height: int) -> list[Box]:
    """The labelled boxes of ``image`` (size ``width`` x ``height``), [] when it has no label file."""
    lf = label_file(image)
    if lf is None:
        return []
    return read_yolo(lf, width, height) if lf.suffix == ".txt" else read_voc(lf)


def labelled_sets(root: Path) -> dict[str, list[Path]]:
    """Every folder under ``root`` holding ``images/``: set name (relative path) → sorted image paths."""
    if not root.is_dir():
        raise TrainerError(f"{root}: expected a folder of labelled sets (…/images + …/labels), found none")
    sets = {}
    for images in sorted(p for p in root.rglob("images") if p.is_dir()):
        files = sorted(p for p in images.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if files:
            name = images.parent.relative_to(root).as_posix()
            sets[name if name != "." else root.name] = files
    if not sets:
        raise TrainerError(f"{root}: no 'images' folder with photographs below it")
    return sets
