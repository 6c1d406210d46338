"""``stainless-train find-wbc IMAGE|FOLDER [...] --pixel-size-um X|auto [--method cnn] [--workers N] [--json]``: white
cells in stained RGB images. ``auto`` estimates the pixel size from the red cells and refuses when too few show;
several images (or a folder) share one pixel size, estimated from all of them, as a slide is calibrated once, and
are searched by ``--workers`` processes (the finder runs on one core per image)."""

from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from core.images import ImageError, read_rgb
from edge.device.priority import usable_cores
from trainer.data.config import PHOTO_METHOD, PHOTO_STAGE2, WBC_METHODS, WbcConfig, load_build_config, photo_finder
from trainer.errors import TrainerError
from trainer.wbc.finder import find_wbcs, srgb_to_linear
from trainer.wbc.labelled import IMAGE_DIRS, IMAGE_SUFFIXES, Box, yolo_text
from trainer.wbc.rbcscale import estimate_pixel_size, sampled_pixel_size


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("find-wbc", help="locate white cells in stained RGB images (PNG, JPEG, TIFF)")
    p.add_argument("images", type=Path, nargs="+", metavar="IMAGE",
                   help="image files or folders of them (a folder's own images, else its images/ or JPEGImages/)")
    p.add_argument("--pixel-size-um", required=True,
                   help="sample-plane pixel size, µm, or auto (from the red cells, ~7.8 µm across; several images "
                        "share one estimate)")
    p.add_argument("--method", choices=WBC_METHODS, default=None,
                   help=f"finder (default: {PHOTO_METHOD} with second stage {PHOTO_STAGE2}, or the --config's "
                        "[wbc] section when a config is given)")
    p.add_argument("--stage2", default=None,
                   help="second stage: off, shipped, or a file (net: .npz, cnn: .onnx verifier); default: off when "
                        f"--method is named, {PHOTO_STAGE2} when not, the config's with --config")
    p.add_argument("--encoding", choices=("auto", "srgb", "linear"), default="auto",
                   help="auto: 8-bit images are sRGB photographs, 16-bit are linear raw frames")
    p.add_argument("--black-level", type=float, default=0.0, help="ADU to subtract from linear images")
    p.add_argument("--config", type=Path, default=None, help="build config TOML; its [wbc] section is used")
    p.add_argument("--labels", type=Path, default=None, metavar="DIR",
                   help="also write each image's cells as YOLO labels DIR/NAME.txt (classes.txt: wbc, wbc_cut), "
                        "a labelled folder for review and retraining")
    p.add_argument("--workers", type=int, default=1, metavar="N",
                   help="processes searching several images at once (default 1: this process; 0: one per usable "
                        "core). Each starts in about half a second")
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=run)


def image_paths(args: list[Path]) -> list[Path]:
    """The image files named, a folder standing for its own images (or, if it has none, those of its
    ``images/`` or ``JPEGImages/``), in the order given, each folder's sorted by name."""
    out: list[Path] = []
    for a in args:
        if not a.is_dir():
            out.append(a)  # a missing or unreadable file is reported when it is read
            continue
        files = _images_in(a)
        for sub in (d for d in sorted(a.iterdir()) if not files and d.is_dir() and d.name.lower() in IMAGE_DIRS):
            files = _images_in(sub)
        if not files:
            raise TrainerError(f"{a}: expected image files ({', '.join(IMAGE_SUFFIXES)}) in the folder or in its "
                               "images/ or JPEGImages/, found none")
        out.extend(files)
    return out


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


@dataclass(frozen=True)
class _Reader:
    """Image files as the finder takes them, under the command's ``--encoding`` and ``--black-level``."""

    encoding: str
    black_level: float

    def read(self, path: Path) -> tuple[NDArray[Any], float]:
        """Linear RGB ``(3, H, W)`` and the black level still to subtract from it."""
        rgb = read_rgb(path)
        if self.encoding == "linear" or (self.encoding == "auto" and rgb.dtype != np.uint8):
            return rgb, self.black_level
        if rgb.dtype != np.uint8:
            raise ImageError(f"--encoding srgb needs an 8-bit image; {path} is {rgb.dtype}")
        return srgb_to_linear(rgb), 0.0

    def for_scale(self, path: Path) -> NDArray[np.float32]:
        rgb, black = self.read(path)
        return np.asarray(rgb, np.float32) - np.float32(black)


def _pixel_size(spec: str, paths: list[Path], reader: _Reader) -> tuple[float, str]:
    if spec != "auto":
        try:
            return float(spec), "given"
        except ValueError as exc:
            raise TrainerError(f"--pixel-size-um: expected µm per pixel or 'auto', found {spec!r}") from exc
    if len(paths) == 1:
        est = estimate_pixel_size(reader.for_scale(paths[0]))  # ScaleError is a TrainerError
        return est.pixel_size_um, f"auto: median red cell {est.rbc_diameter_px:.1f} px of {est.cells}"
    ps, voters = sampled_pixel_size(paths, reader.for_scale)
    return ps, f"auto: red cells of a sample of the {len(paths)} images ({voters} with enough single red cells)"


def _finder(args: argparse.Namespace) -> WbcConfig:
    cfg = load_build_config(args.config).wbc
    if args.config is None:
        method, stage2 = photo_finder(args.method, args.stage2)
    else:
        method, stage2 = args.method or cfg.method, args.stage2 or cfg.stage2
    return replace(cfg, method=method, stage2=stage2)


LABEL_CLASSES = ("wbc", "wbc_cut")  # --labels: a white cell; one cut by the image border or the field stop


def _cells(path: Path, pixel_size: float, cfg: WbcConfig, reader: _Reader, labels: Path | None
           ) -> list[dict[str, Any]]:
    rgb, black = reader.read(path)
    cells = find_wbcs(rgb, pixel_size, cfg, black_level=black)
    if labels is not None:
        boxes = [Box(c.bbox[0], c.bbox[1], c.bbox[2], c.bbox[3], LABEL_CLASSES[c.cut]) for c in cells]
        (labels / f"{path.stem}.txt").write_text(yolo_text(boxes, rgb.shape[2], rgb.shape[1], list(LABEL_CLASSES)))
    return [{"x": round(c.x, 2), "y": round(c.y, 2), "bbox": list(c.bbox), "area_um2": round(c.area_um2, 2),
             "cut": c.cut} for c in cells]


def _search(path: Path, pixel_size: float, cfg: WbcConfig, reader: _Reader, labels: Path | None) -> dict[str, Any]:
    """One image of several: its cells, or why it could not be searched (one bad file loses nothing else)."""
    try:
        return {"image": str(path), "cells": _cells(path, pixel_size, cfg, reader, labels)}
    except (ImageError, TrainerError) as exc:
        return {"image": str(path), "error": str(exc)}


def _searched(paths: list[Path], workers: int, search: partial[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """``search`` of each path, in order: in this process, or in ``workers`` spawned ones (each loads the finder's
    models once; spawned, not forked, so no thread of a loaded library is copied mid-call)."""
    workers = min(workers or usable_cores(), len(paths))
    if workers <= 1:
        yield from map(search, paths)
        return
    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        yield from pool.map(search, paths)


def _label_dir(labels: Path, paths: list[Path]) -> Path:
    """``--labels``: the folder, with its ``classes.txt``; refused when two images would share a label file."""
    stems = [p.stem for p in paths]
    if len(set(stems)) < len(stems):
        twice = sorted({s for s in stems if stems.count(s) > 1})
        raise TrainerError(f"--labels: images named {', '.join(twice[:3])} come from more than one folder and would "
                           "write the same label file; label each folder in a run of its own")
    labels.mkdir(parents=True, exist_ok=True)
    (labels / "classes.txt").write_text("".join(f"{c}\n" for c in LABEL_CLASSES))
    return labels


def _print_cells(path: Path, cells: list[dict[str, Any]]) -> None:
    print(f"{len(cells)} white cells in {path}")
    for c in cells:
        print(f"  x {c['x']:8.1f}  y {c['y']:8.1f}  bbox {c['bbox']}  area {c['area_um2']:6.1f} µm²"
              + ("  cut by the edge" if c["cut"] else ""))


def run(args: argparse.Namespace) -> int:
    if args.workers < 0:
        raise TrainerError(f"--workers: expected 0 (one per usable core) or more, found {args.workers}")
    paths = image_paths(args.images)
    reader = _Reader(args.encoding, args.black_level)
    cfg = _finder(args)
    pixel_size, scale_note = _pixel_size(args.pixel_size_um, paths, reader)
    labels = None if args.labels is None else _label_dir(args.labels, paths)
    head = {"pixel_size_um": round(pixel_size, 4), "scale": scale_note, "method": cfg.method, "stage2": cfg.stage2}
    if not args.json:
        print(f"pixel size {pixel_size:.4f} µm ({scale_note}); method {cfg.method}, second stage {cfg.stage2}")
    if len(args.images) == 1 and not args.images[0].is_dir():
        cells = _cells(paths[0], pixel_size, cfg, reader, labels)  # one file: its errors end the command
        if args.json:
            print(json.dumps({"image": str(paths[0]), **head, "cells": cells}, indent=2))
        else:
            _print_cells(paths[0], cells)
        return 0
    results: list[dict[str, Any]] = []
    for i, result in enumerate(_searched(paths, args.workers, partial(_search, pixel_size=pixel_size, cfg=cfg,
                                                                      reader=reader, labels=labels)), 1):
        results.append(result)
        if "error" in result:
            print(f"[{i}/{len(paths)}] {result['image']}: skipped: {result['error']}", file=sys.stderr)
        elif args.json:
            print(f"[{i}/{len(paths)}] {result['image']}: {len(result['cells'])} white cells", file=sys.stderr)
        else:
            _print_cells(Path(result["image"]), result["cells"])
    errors = sum("error" in r for r in results)
    total = sum(len(r.get("cells", ())) for r in results)
    if args.json:
        print(json.dumps({**head, "images": results, "cells_total": total, "errors": errors}, indent=2))
    else:
        print(f"{total} white cells in {len(paths) - errors} images"
              + (f"; {errors} could not be read" if errors else ""))
    return 1 if errors else 0
