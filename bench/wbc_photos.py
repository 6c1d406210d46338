"""White-cell finder on labelled stained photographs: per-set recall and precision.

    python bench/wbc_photos.py --data ../shared/data/wbc-photos [--method cnn|net|stain|od|hsv] [--json]
        (default: cnn with its shipped check, as stainless-train find-wbc)
        [--pixel-size-um auto|0.5|pig/test=0.55,...] [--sheet misses.png [--sheet-tile 96]] [--sets ...]
        [--model W.onnx|W.npz] [--stage2 off|shipped|S.npz|V.onnx] [--relative] [--curve]

Match rule (stated in every report): a labelled box counts as found when a detected centre lies
inside it grown by ``--tol-px`` (5 px) on every side; a detection counts as correct when its centre
lies inside a labelled box grown the same way. Cells the finder marks as cut by the image border
are counted like any other detection (``precision_uncut`` in the JSON leaves them out). Boxes whose
class is not a white cell (red cells, platelets, smudge cells, ...: :func:`trainer.wbc.labelled.is_white_cell`)
are left out and counted (``other_class_boxes``); ``other_classes`` says per class how many of them have a
detection inside (grown the same way): which non-cells the false alarms are, e.g. smudge cells found.
Per-image failures (missed boxes, false alarms) are listed; ``--sheet`` writes a contact sheet of
crops around misses (red frame) and false alarms (blue, the detection marked), numbered, and the JSON's
``sheet_crops`` says which photograph and place each tile shows (``--sheet-tile``: a larger tile to judge a crop by
eye, e.g. whether a false alarm is a white cell the labels lack). ``--relative`` (cnn): per set, the threshold
is the model's stored ``alpha`` x the set's reference, the median of its photographs' strongest
heat-map peaks (:func:`trainer.wbc.cnn_hard.set_reference`; one extra pass over the set).
``--curve`` (cnn, or net without a second stage): the finder runs once at a floor score
(``CURVE_FLOOR``) and the operating point keeps the detections scoring ≥ its threshold (the same cells
a normal run finds: maxima above a threshold are a subset of those above a lower one); per set the
JSON adds ``ranking``, a threshold-free diagnostic: the best precision at recall ≥ 0.97 over all
thresholds (:func:`best_precision_at_recall`; a reading of the score order, not an operating point).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.images import ImageError, read_rgb
from trainer.data.config import PHOTO_METHOD, PHOTO_STAGE2, WbcConfig, photo_finder
from trainer.errors import TrainerError
from trainer.wbc.finder import find_wbcs, srgb_to_linear
from trainer.wbc.labelled import Box, is_white_cell, labelled_sets, match, read_boxes
from trainer.wbc.rbcscale import SCALE_IMAGES, ScaleError, sampled_pixel_size

log = logging.getLogger(__name__)

CURVE_FLOOR = 0.02  # --curve: lowest score kept (heat map; with a second check, the combined score)
CURVE_RECALL = 0.97  # --curve: the recall the ranking diagnostic must reach (the target)
MATCH_RULE = ("a labelled box is found when a detected centre lies inside it grown by {tol} px; "
              "a detection is correct when its centre lies inside a labelled box grown by {tol} px")


@dataclass
class SetScore:
    images: int = 0
    boxes: int = 0
    found: int = 0
    detections: int = 0
    correct: int = 0
    seconds: float = 0.0
    uncut: int = 0  # detections not marked cut
    uncut_correct: int = 0
    # boxes of other classes (red cells, platelets, smudge cells, ...), left out: class → [boxes, with a detection in]
    other_classes: dict[str, list[int]] = field(default_factory=dict)
    unreadable: int = 0  # image files that could not be read, left out
    det_scores: list[float] = field(default_factory=list)  # --curve: every detection's score
    det_correct: list[bool] = field(default_factory=list)  # --curve: ... inside a labelled box
    box_best: list[float] = field(default_factory=list)  # --curve: per box, best score inside it (0 = none)

    def count_other(self, label: str, boxes: int, detected: int) -> None:
        n = self.other_classes.setdefault(label, [0, 0])
        n[0], n[1] = n[0] + boxes, n[1] + detected

    @property
    def recall(self) -> float:
        return self.found / self.boxes if self.boxes else 1.0

    @property
    def precision(self) -> float:
        return self.correct / self.detections if self.detections else 1.0

    @property
    def f1(self) -> float:
        r, p = self.recall, self.precision
        return 2 * r * p / (r + p) if r + p else 0.0

    def to_dict(self) -> dict[str, Any]:
        others = {k: {"boxes": n, "detected": d} for k, (n, d) in sorted(self.other_classes.items())}
        other_boxes = sum(n for n, _ in self.other_classes.values())
        return {"images": self.images, "labelled_cells": self.boxes, "found": self.found,
                "detections": self.detections, "correct": self.correct,
                "recall": round(self.recall, 3), "precision": round(self.precision, 3), "f1": round(self.f1, 3),
                "precision_uncut": round(self.uncut_correct / self.uncut if self.uncut else 1.0, 3),
                "ms_per_image": round(1000 * self.seconds / max(self.images, 1), 1),
                **({"other_class_boxes": other_boxes} if other_boxes else {}),
                **({"other_classes": others} if others else {}),
                **({"unreadable_images": self.unreadable} if self.unreadable else {}),
                **({"ranking": ranking(self.det_scores, self.det_correct, self.box_best)} if self.box_best else {})}


def best_precision_at_recall(det_scores: list[float], det_correct: list[bool], box_best: list[float],
                             target: float = CURVE_RECALL) -> tuple[float, float] | None:
    """``(precision, threshold)``: the best precision over all score thresholds whose recall is
    ≥ ``target`` (a box is found at threshold t when a detection scoring ≥ t lies in it; ``box_best``
    = per box the best such score, 0 = none), or None when no threshold reaches ``target``."""
    scores = np.asarray(det_scores, np.float64)
    ok = np.asarray(det_correct, bool)
    best = np.asarray(box_best, np.float64)
    if len(scores) != len(ok):
        raise ValueError(f"expected one correct flag per detection score, found {len(ok)} for {len(scores)}")
    out = None
    for t in np.unique(scores):
        if (best >= t).mean() < target:
            continue
        kept = scores >= t
        prec = float(ok[kept].mean())
        if out is None or prec > out[0]:
            out = (prec, float(t))
    return out


def ranking(det_scores: list[float], det_correct: list[bool], box_best: list[float]) -> dict[str, Any]:
    """The JSON ``ranking`` diagnostic of one set (``--curve``)."""
    r = best_precision_at_recall(det_scores, det_correct, box_best)
    return {"recall_floor": CURVE_RECALL, "best_precision": None if r is None else round(r[0], 3),
            "at_threshold": None if r is None else round(r[1], 3),
            "max_recall": round(float(np.mean(np.asarray(box_best) > 0)), 3)}


def set_pixel_sizes(spec: str) -> dict[str, float]:
    """``SET=VALUE,SET=VALUE`` (µm per pixel per set), refused by name when a value is not a positive number."""
    out = {}
    for item in filter(None, spec.split(",")):
        name, _, value = item.partition("=")
        try:
            out[name.strip()] = float(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"--pixel-size-um: expected SET=µm per pixel, found {item!r}") from None
        if not out[name.strip()] > 0:
            raise argparse.ArgumentTypeError(f"--pixel-size-um: expected a positive size, found {item!r}")
    return out


def _pixel_sizes(spec: str) -> dict[str, float] | str:
    """``auto``, one value for every set, or :func:`set_pixel_sizes`."""
    if "=" in spec:
        return set_pixel_sizes(spec)
    try:
        ok = spec == "auto" or float(spec) > 0
    except ValueError:
        ok = False
    if not ok:
        raise argparse.ArgumentTypeError(f"--pixel-size-um: expected auto, a positive µm per pixel or SET=VALUE,...; "
                                         f"found {spec!r}")
    return spec


# A change to a photograph as another lab or camera would make it: 8-bit sRGB (3, H, W) in and out
# (bench/wbc_stress.py); boxes follow a change of size.
Perturb = Callable[[NDArray[np.uint8]], NDArray[np.uint8]]


def _to_linear(rgb: NDArray[Any], perturb: Perturb | None = None) -> NDArray[np.float32]:
    if perturb is not None:
        if rgb.dtype != np.uint8:
            raise TrainerError(f"a perturbation needs 8-bit photographs, found {rgb.dtype}")
        rgb = perturb(rgb)
    return srgb_to_linear(rgb) if rgb.dtype == np.uint8 else rgb.astype(np.float32)


def _linear(path: Path, perturb: Perturb | None = None) -> NDArray[np.float32]:
    return _to_linear(read_rgb(path), perturb)


def set_scale(images: list[Path], n: int = SCALE_IMAGES, perturb: Perturb | None = None) -> float:
    """``auto``: the set's red-cell estimate from about ``n`` of its images, as a user would calibrate a slide
    once (:func:`trainer.wbc.rbcscale.sampled_pixel_size`)."""
    return sampled_pixel_size(images, lambda p: _linear(p, perturb), n)[0]


def relative_threshold(images: list[Path], cfg: WbcConfig, pixel_size_um: float) -> float:
    """``--relative``: the cnn model's ``alpha`` x the set's reference score."""
    from trainer.wbc.cnn import SHIPPED_CNN, cnn_heat_map, load_cnn
    from trainer.wbc.cnn_hard import set_reference
    from trainer.wbc.density import NMS_UM, WORK_UM, net_input, peaks

    model = load_cnn(cfg.model or str(SHIPPED_CNN))
    if cfg.method != "cnn" or model.alpha <= 0:
        raise SystemExit(f"--relative needs --method cnn and a model with a stored relative_alpha (written by "
                         f"trainer.wbc.cnn_train or trainer.wbc.cnn_ensemble); found method {cfg.method}, "
                         f"alpha {model.alpha}")
    tops = []
    for path in images:
        density, field, _ = net_input(_linear(path), pixel_size_um)
        tops.append(max((p for _, _, p in peaks(cnn_heat_map(model, density, field), 0.1, NMS_UM / WORK_UM)),
                        default=0.0))
    ref = set_reference(tops)
    thr = min(model.alpha * ref, 0.99)
    log.info("relative threshold %.3f = alpha %.3f x reference %.3f", thr, model.alpha, ref)
    return thr


def evaluate_image(path: Path, cfg: WbcConfig, pixel_size_um: float, tol_px: float,
                   perturb: Perturb | None = None) -> dict[str, Any]:
    """Detections, matches and the pixel size used for one labelled photograph."""
    raw = read_rgb(path)
    rgb = _to_linear(raw, perturb)
    (h0, w0), (h, w) = raw.shape[1:], rgb.shape[1:]
    every = read_boxes(path, w0, h0, white_cells_only=False)
    if (h, w) != (h0, w0):
        sx, sy = w / w0, h / h0
        every = [Box(b.x0 * sx, b.y0 * sy, b.x1 * sx, b.y1 * sy, b.label) for b in every]
    boxes = [b for b in every if is_white_cell(b.label)]
    others = [b for b in every if not is_white_cell(b.label)]  # counted, and where a detection lands in one
    t0 = time.perf_counter()
    ps = pixel_size_um
    scale_note = ""
    cells = find_wbcs(rgb, ps, cfg)
    dt = time.perf_counter() - t0
    pts = [(c.x, c.y) for c in cells]
    found, correct = match(pts, boxes, tol_px)
    return {"image": path, "pixel_size_um": ps, "scale_note": scale_note, "seconds": dt, "boxes": boxes,
            "points": pts, "cut": [c.cut for c in cells], "found": found, "correct": correct, "others": others,
            "scores": [c.od for c in cells]}


def operating_threshold(cfg: WbcConfig) -> float:
    """``--curve``: the score a detection needs at the operating point (``net_threshold`` if set, else
    the one stored with the verifier, the cnn model or the net)."""
    if cfg.net_threshold:
        return cfg.net_threshold
    if cfg.method == "cnn" and cfg.stage2 != "off":
        from trainer.wbc.verify import SHIPPED_VERIFY, load_verifier

        return load_verifier(str(SHIPPED_VERIFY) if cfg.stage2 == "shipped" else cfg.stage2).threshold
    if cfg.method == "cnn":
        from trainer.wbc.cnn import SHIPPED_CNN, load_cnn

        return load_cnn(cfg.model or str(SHIPPED_CNN)).threshold
    if cfg.method == "net" and cfg.stage2 == "off":
        from trainer.wbc.net import SHIPPED, load_net

        return load_net(cfg.model or str(SHIPPED))[1]
    raise SystemExit(f"--curve needs --method cnn (with or without --stage2) or net without --stage2; found "
                     f"method {cfg.method}, stage2 {cfg.stage2}")


def at_threshold(r: dict[str, Any], threshold: float, tol_px: float) -> dict[str, Any]:
    """The record ``r`` of a floor-score run cut to the detections scoring ≥ ``threshold``, plus
    ``box_best`` (per box, the best score of a detection inside it; 0 = none) from all of them."""
    box_best = [max((s for (x, y), s in zip(r["points"], r["scores"], strict=True) if b.contains(x, y, tol_px)),
                    default=0.0) for b in r["boxes"]]
    keep = [s >= threshold for s in r["scores"]]
    pts = [p for p, k in zip(r["points"], keep, strict=True) if k]
    found, correct = match(pts, r["boxes"], tol_px)
    return r | {"points": pts, "found": found, "correct": correct, "box_best": box_best,
                "all_scores": r["scores"], "all_correct": match(r["points"], r["boxes"], tol_px)[1],
                "cut": [c for c, k in zip(r["cut"], keep, strict=True) if k],
                "scores": [s for s, k in zip(r["scores"], keep, strict=True) if k]}


def run(data: Path, cfg: WbcConfig, pixel_sizes: dict[str, float] | str, tol_px: float,
        only: list[str] | None = None, relative: bool = False, curve: bool = False,
        perturb: Perturb | None = None, every: int = 1
        ) -> tuple[dict[str, SetScore], list[dict[str, Any]], dict[str, str]]:
    """Scores per set, the per-image records of every image with a failure (``curve``: module doc) and
    the sets left out because no scale could be read from their red cells (set → why); ``perturb``
    changes every photograph first, ``every`` keeps every n-th photograph of a set."""
    scores: dict[str, SetScore] = {}
    failures = []
    skipped: dict[str, str] = {}
    for name, images in labelled_sets(data).items():
        if only and name not in only:
            continue
        images = images[::every]
        spec: str | float = pixel_sizes if isinstance(pixel_sizes, str) else pixel_sizes.get(name, "auto")
        try:
            ps = set_scale(images, perturb=perturb) if spec == "auto" else float(spec)
        except ScaleError as exc:
            skipped[name] = f"{exc} (for this set: --pixel-size-um {name}=VALUE)"
            log.warning("%s: left out: %s", name, skipped[name])
            continue
        log.info("%s: %d images at %.3f µm/px", name, len(images), ps)
        s = scores.setdefault(name, SetScore())
        set_cfg = replace(cfg, net_threshold=relative_threshold(images, cfg, ps)) if relative else cfg
        thr = operating_threshold(set_cfg) if curve else 0.0
        for path in images:
            try:
                r = evaluate_image(path, replace(set_cfg, net_threshold=CURVE_FLOOR) if curve else set_cfg, ps,
                                   tol_px, perturb)
            except ImageError as exc:
                log.warning("%s: left out: %s", name, exc)
                s.unreadable += 1
                continue
            if curve:
                r = at_threshold(r, thr, tol_px)
                s.det_scores += r["all_scores"]
                s.det_correct += r["all_correct"]
                s.box_best += r["box_best"]
            s.images += 1
            s.boxes += len(r["boxes"])
            for b, hit in zip(r["others"], match(r["points"], r["others"], tol_px)[0], strict=True):
                s.count_other(b.label, 1, hit)
            s.found += sum(r["found"])
            s.detections += len(r["points"])
            s.correct += sum(r["correct"])
            s.uncut += sum(not c for c in r["cut"])
            s.uncut_correct += sum(ok and not c for ok, c in zip(r["correct"], r["cut"], strict=True))
            s.seconds += r["seconds"]
            if not all(r["found"]) or not all(r["correct"]):
                r["set"] = name
                failures.append(r)
        log.info("%s: recall %.3f precision %.3f", name, s.recall, s.precision)
    return scores, failures, skipped


def contact_sheet(failures: list[dict[str, Any]], out: Path, tile: int = 96, cols: int = 12,
                  limit: int = 240) -> list[dict[str, Any]]:
    """Crops around misses (red frame) and false alarms (blue, the detection marked), ``tile`` px each, numbered
    in reading order; returns what each tile shows (``tile``, ``set``, ``image``, ``kind``, ``x``, ``y``)."""
    tiles: list[NDArray[Any]] = []
    shown: list[dict[str, Any]] = []
    for r in failures:
        if len(tiles) >= limit:  # the sheet is full: read no more photographs
            break
        img = np.moveaxis(read_rgb(r["image"]), 0, -1)
        if img.dtype != np.uint8:
            img = np.clip(img / max(float(img.max()), 1.0) * 255, 0, 255).astype(np.uint8)
        misses = [((b.x0 + b.x1) / 2, (b.y0 + b.y1) / 2, max(b.x1 - b.x0, b.y1 - b.y0))
                  for b, f in zip(r["boxes"], r["found"], strict=True) if not f]
        size = float(np.median([max(b.x1 - b.x0, b.y1 - b.y0) for b in r["boxes"]])) if r["boxes"] else 40.0
        alarms = [(x, y, size) for (x, y), c in zip(r["points"], r["correct"], strict=True) if not c]
        for (x, y, s), kind in [(m, "missed") for m in misses] + [(a, "false_alarm") for a in alarms]:
            half = int(max(s, 16))
            x0, y0 = int(x) - half, int(y) - half
            pad = cv2.copyMakeBorder(img, half, half, half, half, cv2.BORDER_CONSTANT, value=(0, 0, 0))
            crop = pad[y0 + half:y0 + 3 * half, x0 + half:x0 + 3 * half]
            crop = cv2.resize(np.ascontiguousarray(crop), (tile, tile),
                              interpolation=cv2.INTER_AREA if 2 * half >= tile else cv2.INTER_CUBIC)
            colour = (255, 0, 0) if kind == "missed" else (0, 80, 255)
            if kind == "false_alarm":
                cv2.drawMarker(crop, (tile // 2, tile // 2), colour, cv2.MARKER_CROSS, max(6, tile // 12), 1)
            cv2.rectangle(crop, (0, 0), (tile - 1, tile - 1), colour, 3)
            for ink, width in (((0, 0, 0), 3), ((255, 255, 0), 1)):  # outlined: legible on any background
                cv2.putText(crop, str(len(tiles)), (5, 5 + max(9, tile // 12)), cv2.FONT_HERSHEY_SIMPLEX,
                            max(0.3, tile / 320), ink, width, cv2.LINE_AA)
            tiles.append(crop)
            shown.append({"tile": len(shown), "set": r["set"], "image": r["image"].name, "kind": kind,
                          "x": round(float(x), 1), "y": round(float(y), 1)})
    tiles, shown = tiles[:limit], shown[:limit]
    if tiles:
        rows = -(-len(tiles) // cols)
        sheet = np.zeros((rows * tile, cols * tile, 3), np.uint8)
        for k, t in enumerate(tiles):
            sheet[(k // cols) * tile:(k // cols + 1) * tile, (k % cols) * tile:(k % cols + 1) * tile] = t
        cv2.imwrite(str(out), sheet[..., ::-1])
    return shown


def speed_1440(data: Path, cfg: WbcConfig, repeats: int = 5) -> dict[str, Any]:
    """Best-of-``repeats`` ms to find the cells of one 1440x900 photograph (a chula field at its
    0.17 µm/px if the data has it, else the first image, resized to 1440x900 at 0.5 µm/px), and of
    a baseline method in the same run (``net``; ``od`` when ``cfg`` is ``net``)."""
    sets = labelled_sets(data)
    first = sets.get("chula-train", next(iter(sets.values())))[0]
    rgb = np.stack([cv2.resize(c, (1440, 900), interpolation=cv2.INTER_LINEAR) for c in _linear(first)])
    ps = 0.17 if "chula-train" in sets else 0.5
    base = "od" if cfg.method == "net" else "net"
    times = {}
    for name, c in ((cfg.method, cfg), (base, WbcConfig(method=base))):
        find_wbcs(rgb, ps, c)  # warm-up: model load
        best = float("inf")
        for _ in range(repeats):
            t0 = time.perf_counter()
            find_wbcs(rgb, ps, c)
            best = min(best, time.perf_counter() - t0)
        times[name] = best
    return {"pixel_size_um": ps, "ms": round(1000 * times[cfg.method], 1), "baseline": base,
            "baseline_ms": round(1000 * times[base], 1), "ratio": round(times[cfg.method] / times[base], 2)}


def _failure_line(r: dict[str, Any]) -> dict[str, Any]:
    return {"set": r["set"], "image": r["image"].name, "pixel_size_um": round(r["pixel_size_um"], 3),
            "missed": [[round((b.x0 + b.x1) / 2, 1), round((b.y0 + b.y1) / 2, 1)]
                       for b, f in zip(r["boxes"], r["found"], strict=True) if not f],
            "false_alarms": [[round(x, 1), round(y, 1)]
                             for (x, y), c in zip(r["points"], r["correct"], strict=True) if not c],
            **({"scale": r["scale_note"]} if r["scale_note"] else {})}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, default=Path("../shared/data/wbc-photos"))
    p.add_argument("--method", default=None,
                   help=f"wbc method: cnn, net, stain, od or hsv (default: {PHOTO_METHOD}, --stage2 {PHOTO_STAGE2})")
    p.add_argument("--model", type=Path, default=None,
                   help="learned method: a model other than the shipped one (cnn: .onnx, net: .npz)")
    p.add_argument("--stage2", default=None, help="second stage: off, shipped, or a file (net: .npz, cnn: .onnx); "
                   f"default: off when --method is named, {PHOTO_STAGE2} when not")
    p.add_argument("--pixel-size-um", default="auto", help="auto, one value, or SET=VALUE,SET=VALUE")
    p.add_argument("--sets", default="", help="comma-separated set names (default: all)")
    p.add_argument("--tol-px", type=float, default=5.0)
    p.add_argument("--sheet", type=Path, default=None,
                   help="PNG contact sheet of misses and false alarms (numbered; the JSON's sheet_crops says which "
                        "photograph and place each tile shows)")
    p.add_argument("--sheet-tile", type=int, default=96, metavar="PX",
                   help="side of a contact-sheet tile in pixels (default 96; ~200 to judge a crop by eye)")
    p.add_argument("--speed", action="store_true",
                   help="also time one 1440x900 photograph (best of 5) against net (od for net) in the same run")
    p.add_argument("--speed-repeats", type=int, default=5, help="--speed: best of this many runs")
    p.add_argument("--relative", action="store_true",
                   help="cnn: per set, threshold = the model's alpha x the set's median strongest peak")
    p.add_argument("--curve", action="store_true",
                   help="cnn / net: one run at a floor score; adds the ranking diagnostic (best precision at "
                        "recall >= 0.97 over all thresholds) per set")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    try:
        pixel_sizes = _pixel_sizes(args.pixel_size_um)
    except argparse.ArgumentTypeError as exc:
        p.error(str(exc))
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    method, stage2 = photo_finder(args.method, args.stage2)
    cfg = WbcConfig(method=method, stage2=stage2, model=str(args.model or ""))
    try:
        scores, failures, skipped = run(args.data, cfg, pixel_sizes, args.tol_px,
                                        [s for s in args.sets.split(",") if s] or None, args.relative, args.curve)
    except TrainerError as exc:  # a folder without labelled sets, a broken label file
        print(f"wbc_photos: error: {exc}", file=sys.stderr)
        return 2
    if not scores:
        print("wbc_photos: error: no set could be scored: " + "; ".join(f"{k}: {v}" for k, v in skipped.items()),
              file=sys.stderr)
        return 2
    if not 32 <= args.sheet_tile <= 512:
        p.error(f"--sheet-tile must be 32-512 px, got {args.sheet_tile}")
    crops = contact_sheet(failures, args.sheet, tile=args.sheet_tile) if args.sheet else []
    speed = speed_1440(args.data, cfg, args.speed_repeats) if args.speed else {}
    total = SetScore()
    for s in scores.values():
        for k in ("images", "boxes", "found", "detections", "correct", "seconds", "uncut", "uncut_correct",
                  "unreadable"):
            setattr(total, k, getattr(total, k) + getattr(s, k))
        for label, (n, hit) in s.other_classes.items():
            total.count_other(label, n, hit)
    report = {"method": cfg.method, "stage2": cfg.stage2, "match_rule": MATCH_RULE.format(tol=args.tol_px),
              "pixel_size_um": args.pixel_size_um, "sets": {k: v.to_dict() for k, v in scores.items()},
              "all": total.to_dict(), "failures": [_failure_line(r) for r in failures],
              **({"skipped_sets": skipped} if skipped else {}),
              **({"sheet": str(args.sheet), "sheet_tiles": len(crops), "sheet_crops": crops} if args.sheet else {}),
              **({"speed_1440x900": speed} if speed else {})}
    if args.json:
        print(json.dumps(report, indent=1))
        return 0
    print(f"method {cfg.method}; pixel size {args.pixel_size_um}; match rule: {report['match_rule']}")
    print(f"{'set':<14}{'recall':>8}{'precision':>10}{'images':>8}{'cells':>7}{'ms/img':>8}")
    for name, d in [*report["sets"].items(), ("all", report["all"])]:
        print(f"{name:<14}{d['recall']:>8.3f}{d['precision']:>10.3f}{d['images']:>8}{d['labelled_cells']:>7}"
              f"{d['ms_per_image']:>8.1f}")
    if speed:
        print(f"1440x900 photograph at {speed['pixel_size_um']} µm/px: {cfg.method} {speed['ms']} ms, "
              f"{speed['baseline']} {speed['baseline_ms']} ms (ratio {speed['ratio']})")
    for name, d in report["sets"].items():
        for label, o in d.get("other_classes", {}).items():
            print(f"{name}: {o['detected']} of {o['boxes']} boxes of class {label!r} (no white cell) hold a detection")
    for name, why in skipped.items():
        print(f"{name}: left out: {why}")
    print(f"{len(failures)} images with a failure" + (f"; contact sheet {args.sheet} ({len(crops)} crops)"
                                                      if args.sheet else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
