"""Accuracy of the dataset builder against the simulator's truth (only this script reads the truth).

* WBC localisation on raw scans: each kept detection of :func:`trainer.data.pairs.pair_field` is
  matched (Hungarian, within the cell's radius) to the simulated white cells; recall counts cells
  whose centre lies where a 64 px crop fits; smudge cells (damaged WBCs) are reported apart.
* WBC localisation under lab/camera colour variation: stained frames of both stain styles
  (``lab_variation`` 0.3), white balance, exposure, ±25° hue, x0.6–1.5 saturation, sRGB 8-bit;
  cells cut by the frame edge may be found but need not be, smudge cells are reported apart
  (as on raw scans). Seeds 5000+ (the finder's thresholds
  were tuned on seeds 1000–1023, so these frames are held out).
* Registration: at every kept cell of fields the PLS check did not flag (a slipped brightfield
  plane moves the registration with it; those samples carry the ``pls_misaligned`` flag), where
  the builder says the crop centre lands in the stained image (coarse map + fine offset) against
  the simulated misregistration; RMS in px.
* PLS check: measured brightfield slip against the simulated one; recall for slips ≥ 2 px and
  false alarms on aligned fields at ``pls.max_shift_px``.

    python bench/dataset_accuracy.py --scans RAW [RAW ...] [--pls-scans RAW ...] [--frames 16] [--json]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment

from core import rawscan
from trainer.data.config import BuildConfig
from trainer.data.pairs import FieldRejected, pair_field
from trainer.data.plscheck import pls_shift
from trainer.data.synthetic import render_stained_field
from trainer.wbc.finder import find_wbcs, srgb_to_linear

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from sim.accuracy import jitter_to_srgb8, match_cells


def _truth_map(t: dict[str, Any], ps: float, w: int, h: int) -> tuple[np.ndarray, np.ndarray]:
    mr = t["stained_misregistration"]
    c = np.array([w * ps / 2, h * ps / 2])
    th = math.radians(mr["rotation_deg"])
    a = mr["scale"] * np.array([[math.cos(th), -math.sin(th)], [math.sin(th), math.cos(th)]])
    return a, c + np.asarray(mr["shift_um"]) - a @ c


def scans_accuracy(scans: list[Path], cfg: BuildConfig) -> dict[str, Any]:
    tp = fp = fn = fp_smudge = 0
    errors: list[float] = []
    rejected: dict[str, int] = {}
    half = cfg.align.crop_px // 2 + cfg.align.search_px
    for scan in scans:
        for i, fd in enumerate(rawscan.list_fields(scan)):
            u, s = rawscan.read_image(fd, "unstained"), rawscan.read_image(fd, "stained")
            t = rawscan.read_truth(scan, int(fd.name.split("_")[1]))
            try:
                pairs = pair_field(u.pixels, u.meta, s.pixels, s.meta, cfg)
            except FieldRejected as exc:
                rejected[exc.reason] = rejected.get(exc.reason, 0) + 1
                continue
            ps = u.meta["pixel_size_um"]
            h, w = u.pixels.shape[-2:]
            a, b = _truth_map(t, ps, w, h)
            labels = rawscan.truth_dir(scan, i) / "labels.tif"
            structure = __import__("tifffile").imread(labels)[0]
            mid = cfg.align.crop_px / 2 - 0.5
            centres = [(r["crop_xy"][0] + mid, r["crop_xy"][1] + mid, r["fine_offset"]) for r in pairs.rows]
            slipped = pairs.pls_px > cfg.pls.max_shift_px  # flagged: the brightfield is not the PLS frame
            for x, y, (dx, dy) in ([] if slipped else centres):
                est = pairs.registration.to_stained(np.array([[x + dx, y + dy]]))[0]  # type: ignore[union-attr]
                true = (a @ ((np.array([x, y]) + 0.5) * ps) + b) / ps - 0.5
                errors.append(float(np.hypot(*(est - true))))
            truth = [dict(c, inside=_usable(c["center_px"], a, b, ps, w, h, half)) for c in t["wbcs"]]
            dets = [type("D", (), {"x": x + dx, "y": y + dy})() for x, y, (dx, dy) in centres]
            a_, b_, c_ = match_cells(dets, truth, ps)
            tp, fn = tp + a_, fn + c_
            unmatched = _unmatched(dets, truth, ps)
            smudges = sum(int(structure[round(d.y), round(d.x)]) == 6 for d in unmatched)  # 6: "smudge"
            fp, fp_smudge = fp + b_ - smudges, fp_smudge + smudges
    err = np.asarray(errors)
    return {"fields_rejected": rejected, "cells_matched": tp, "false_positives": fp,
            "smudge_cells_found": fp_smudge, "missed": fn,
            "recall": round(tp / max(tp + fn, 1), 4), "precision": round(tp / max(tp + fp, 1), 4),
            "precision_counting_smudges_as_false": round(tp / max(tp + fp + fp_smudge, 1), 4),
            "registration_rms_px": round(float(np.sqrt(np.mean(err**2))), 4) if err.size else None,
            "registration_max_px": round(float(err.max()), 4) if err.size else None, "cells_for_registration": err.size}


def _usable(xy: list[float], a: np.ndarray, b: np.ndarray, ps: float, w: int, h: int, half: int) -> bool:
    """A crop at this unstained position fits in the unstained and in the stained frame."""
    st = (a @ ((np.asarray(xy) + 0.5) * ps) + b) / ps - 0.5
    return all(half <= v < lim - half for v, lim in ((xy[0], w), (xy[1], h), (st[0], w), (st[1], h)))


def _unmatched(dets: list[Any], truth: list[dict[str, Any]], ps: float) -> list[Any]:
    if not dets or not truth:
        return list(dets)
    d = np.array([[np.hypot(a.x - t["center_px"][0], a.y - t["center_px"][1]) * ps for t in truth] for a in dets])
    rows, cols = linear_sum_assignment(d)
    ok = {i for i, j in zip(rows, cols, strict=True) if d[i, j] <= truth[j]["radius_um"]}
    return [a for i, a in enumerate(dets) if i not in ok]


def colour_robustness(frames: int, cfg: BuildConfig) -> dict[str, Any]:
    rng = np.random.default_rng(0)
    out: dict[str, Any] = {}
    for mode in ("raw", "jittered_srgb8"):
        tp = fp = fn = fp_strict = 0
        for k in range(frames):
            style = ("mgg", "wright-giemsa")[k % 2]
            rgb, truth = render_stained_field(384, 5000 + k, style, 0.3, {"wbc_per_mm2": 1200.0})
            if mode == "raw":
                found = find_wbcs(rgb, 0.293, cfg.wbc, 16)
            else:
                found = find_wbcs(srgb_to_linear(jitter_to_srgb8(rgb, rng)), 0.293, cfg.wbc, 0)
            a, b, c = match_cells(found, truth)  # smudge cells listed, never required: not false
            tp, fp, fn = tp + a, fp + b, fn + c
            fp_strict += match_cells(found, [t for t in truth if t["type"] != "smudge"])[1]
        out[mode] = {"cells": tp + fn, "recall": round(tp / max(tp + fn, 1), 4),
                     "precision": round(tp / max(tp + fp, 1), 4), "false_positives": fp, "missed": fn,
                     "smudge_cells_found": fp_strict - fp,
                     "precision_counting_smudges_as_false": round(tp / max(tp + fp_strict, 1), 4)}
    return out


def pls_accuracy(scans: list[Path], cfg: BuildConfig) -> dict[str, Any]:
    rows = []
    for scan in scans:
        for fd in rawscan.list_fields(scan):
            u = rawscan.read_image(fd, "unstained")
            t = rawscan.read_truth(scan, int(fd.name.split("_")[1]))
            s = pls_shift(u.pixels, u.meta["planes"], u.meta["objective"]["na"], u.meta["camera"]["black_level_adu"])
            true = np.asarray(t["pls_misalignment_um"]) / u.meta["pixel_size_um"]
            rows.append((float(np.hypot(*true)), s.magnitude if s else 0.0))
    a = np.asarray(rows)
    aligned, big = a[a[:, 0] == 0], a[a[:, 0] >= 2.0]
    thr = cfg.pls.max_shift_px
    return {"fields": len(a), "aligned_fields": len(aligned), "slips_ge_2px": len(big),
            "recall_ge_2px": round(float((big[:, 1] > thr).mean()), 4) if len(big) else None,
            "false_alarm_rate": round(float((aligned[:, 1] > thr).mean()), 4) if len(aligned) else None,
            "aligned_max_measured_px": round(float(aligned[:, 1].max()), 4) if len(aligned) else None}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scans", type=Path, nargs="*", default=[])
    p.add_argument("--pls-scans", type=Path, nargs="*", default=[])
    p.add_argument("--frames", type=int, default=16)
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    cfg = BuildConfig()
    result = {"raw_scans": scans_accuracy(args.scans, cfg) if args.scans else None,
              "colour_robustness": colour_robustness(args.frames, cfg) if args.frames else None,
              "pls_check": pls_accuracy(args.pls_scans, cfg) if args.pls_scans else None}
    print(json.dumps(result, indent=1 if args.json else 2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
