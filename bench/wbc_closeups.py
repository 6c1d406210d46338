"""Close-ups of a labelled photograph folder: a small field around one white cell, as many public sets are cut.

    python bench/wbc_closeups.py --data ../shared/data/wbc-photos --out CLOSE --window-um 55x41
        --pixel-size-um pig/train=0.652,chula-train=0.203 [--size 640x480] [--sets pig/train] [--seed 0]
    python bench/wbc_photos.py --data CLOSE --json

Public white-cell sets are often close-ups: a field of a few dozen µm, one white cell and a few red cells
(BCCD's 640x480 frames hold ~50x40 µm at ~0.08 µm per pixel). Per photograph of each labelled set this
writes one such field: a ``--window-um`` window holding the photograph's first labelled white cell at a
random place (its centre between 30 % and 70 % of the window), resized to ``--size`` (default: as cut) and
saved as JPEG q90, with every labelled box whose centre lies in the window, clipped to it, as YOLO lines
under the source's class names (``classes.txt``). The photo bench then reads the folder like any other;
the true pixel size of each set is printed (and stored in ``closeups.json``) to compare with ``auto``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.wbc_photos import set_pixel_sizes
from core.images import read_rgb
from trainer.errors import TrainerError
from trainer.wbc.labelled import Box, is_white_cell, labelled_sets, read_boxes, yolo_text


def _pair(text: str, what: str, kind: type) -> tuple:
    try:
        a, b = (kind(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{what}: expected WxH like 55x41, found {text!r}") from None
    if a <= 0 or b <= 0:
        raise argparse.ArgumentTypeError(f"{what}: expected positive sizes, found {text!r}")
    return a, b


def window(box: Box, width: int, height: int, win: tuple[int, int], rng: np.random.Generator) -> tuple[int, int]:
    """Top-left corner of a ``win`` (w, h) px window inside the image that holds the box's centre at a random
    place between 30 % and 70 % of the window (shifted inwards at the image's border)."""
    cx, cy = (box.x0 + box.x1) / 2, (box.y0 + box.y1) / 2
    x0 = int(np.clip(round(cx - win[0] * rng.uniform(0.3, 0.7)), 0, width - win[0]))
    y0 = int(np.clip(round(cy - win[1] * rng.uniform(0.3, 0.7)), 0, height - win[1]))
    return x0, y0


def boxes_in(boxes: list[Box], x0: int, y0: int, win: tuple[int, int], min_px: float = 4.0) -> list[Box]:
    """The boxes whose centre lies in the window, clipped to it, in window pixels (those left thinner than
    ``min_px`` dropped)."""
    out = []
    for b in boxes:
        cx, cy = (b.x0 + b.x1) / 2, (b.y0 + b.y1) / 2
        if not (x0 <= cx < x0 + win[0] and y0 <= cy < y0 + win[1]):
            continue
        c = Box(max(b.x0, x0) - x0, max(b.y0, y0) - y0, min(b.x1, x0 + win[0]) - x0, min(b.y1, y0 + win[1]) - y0,
                b.label)
        if c.x1 - c.x0 >= min_px and c.y1 - c.y0 >= min_px:
            out.append(c)
    return out


def write_set(images: list[Path], out: Path, pixel_size_um: float, window_um: tuple[float, float],
              size: tuple[int, int] | None, rng: np.random.Generator) -> dict[str, Any]:
    """Close-ups of one set's photographs into ``out/images`` and ``out/labels``; what was written."""
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "labels").mkdir(parents=True, exist_ok=True)
    classes: list[str] = []
    written = 0
    win_px = (1, 1)
    for path in images:
        rgb = read_rgb(path)
        if rgb.dtype != np.uint8:
            raise TrainerError(f"{path}: close-ups are written as 8-bit JPEG; found {rgb.dtype} pixels")
        h, w = rgb.shape[1:]
        win_px = (min(max(round(window_um[0] / pixel_size_um), 8), w),
                  min(max(round(window_um[1] / pixel_size_um), 8), h))
        every = read_boxes(path, w, h, white_cells_only=False)
        cells = [b for b in every if is_white_cell(b.label)]
        if not cells:
            continue
        x0, y0 = window(cells[0], w, h, win_px, rng)
        crop = np.ascontiguousarray(np.moveaxis(rgb[:, y0:y0 + win_px[1], x0:x0 + win_px[0]], 0, -1)[..., ::-1])
        target = size or win_px
        interp = cv2.INTER_AREA if target[0] < win_px[0] else cv2.INTER_CUBIC
        crop = cv2.resize(crop, target, interpolation=interp)
        sx, sy = target[0] / win_px[0], target[1] / win_px[1]
        scaled = [Box(b.x0 * sx, b.y0 * sy, b.x1 * sx, b.y1 * sy, b.label) for b in boxes_in(every, x0, y0, win_px)]
        name = path.stem + ".jpg"
        if not cv2.imwrite(str(out / "images" / name), crop, [cv2.IMWRITE_JPEG_QUALITY, 90]):
            raise TrainerError(f"could not write {out / 'images' / name}")
        (out / "labels" / (path.stem + ".txt")).write_text(yolo_text(scaled, target[0], target[1], classes))
        written += 1
    (out / "labels" / "classes.txt").write_text("".join(f"{c}\n" for c in classes))
    scale = (size[0] / win_px[0]) if size else 1.0
    return {"images": written, "window_px": list(win_px), "pixel_size_um": pixel_size_um / scale}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, required=True, help="a folder of labelled sets (as the photo bench reads)")
    p.add_argument("--out", type=Path, required=True, help="where the close-up sets are written (must not exist)")
    p.add_argument("--pixel-size-um", type=set_pixel_sizes, required=True,
                   help="SET=µm per pixel for every set written (the window is cut in µm)")
    p.add_argument("--window-um", type=lambda t: _pair(t, "--window-um", float), default=(55.0, 41.0),
                   help="the close-up's field, W x H µm (default 55x41, BCCD's)")
    p.add_argument("--size", type=lambda t: _pair(t, "--size", int), default=None,
                   help="resize every close-up to W x H px (e.g. 640x480); default: as cut")
    p.add_argument("--sets", default="", help="comma-separated set names (default: every set given a pixel size)")
    p.add_argument("--seed", type=int, default=0, help="where in the window the cell lands")
    args = p.parse_args(argv)
    if args.out.exists():
        p.error(f"--out {args.out} exists; give a new folder")
    try:
        sets = labelled_sets(args.data)
    except TrainerError as exc:
        p.error(str(exc))
    wanted = [s for s in args.sets.split(",") if s] or list(args.pixel_size_um)
    unknown = [s for s in wanted if s not in sets or s not in args.pixel_size_um]
    if unknown:
        p.error(f"sets {unknown}: expected sets of {args.data} ({sorted(sets)}) each with a --pixel-size-um")
    rng = np.random.default_rng(args.seed)
    report = {}
    for name in wanted:
        report[name] = write_set(sets[name], args.out / name, args.pixel_size_um[name], args.window_um, args.size, rng)
        print(f"{name}: {report[name]['images']} close-ups of {args.window_um[0]:g}x{args.window_um[1]:g} µm at "
              f"{report[name]['pixel_size_um']:.4f} µm/px", file=sys.stderr)
    (args.out / "closeups.json").write_text(json.dumps({"window_um": list(args.window_um), "sets": report}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
