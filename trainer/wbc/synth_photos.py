"""Labelled white-cell photographs from the simulator: a training folder like the real ones.

    python -m trainer.wbc.synth_photos --out DIR [--fields 300] [--size 512] [--seed 0]
        [--differential equal|blood] [--wbc-per-mm2 300] [--lab-variation 0.3]
        [--precipitate-per-mm2 200] [--field-stop 0] [--smear KEY=VALUE ...]

Writes ``DIR/images/*.png`` (8-bit sRGB) and ``DIR/labels/*.txt`` (YOLO, ``class cx cy w h``
normalised; the class is the index into ``DIR/classes.txt``: :data:`sim.maps.WBC_TYPES`, then
``smudge``), so the white-cell trainers take it as one more ``--set DIR=auto`` (and, since every white cell is boxed,
``--negatives`` may name it). Each field is :func:`trainer.data.synthetic.render_stained_field`
(Wright–Giemsa and MGG in turn, lab-to-lab variation of the stain) photographed by a random camera
(:func:`sim.accuracy.jitter_to_srgb8`: white balance, exposure, hue, saturation, sRGB).

Why: the real folders come from one lab each and hold the white-cell types in their own
proportions (pig: mostly lymphocytes and neutrophils). A check trained on pig alone lost half of
another lab's lymphocytes and a third of its basophils; simulated cells of every type, drawn with
``--differential equal`` (each type a fifth, rare ones as often as common ones), taught it what a
white cell of another lab may look like (docs/wbc-photos.md, "The simulator as a third training
folder"). A cell is boxed when its centre lies on the frame (a box's centre is where a finder
must point); smudge cells (crushed white cells) are boxed as class ``smudge``, which every reader
takes for a non-cell (:func:`trainer.wbc.labelled.is_white_cell`): the trainers leave the box out,
so a candidate there is a negative (with ``--negatives``), and the photo bench counts the smudge
cells it finds (``other_classes``). Stain precipitate is not boxed (specks under a micrometre). ``--smear``
sets any :class:`sim.smearconfig.SmearConfig` field (e.g. more confusers: ``platelets_per_rbc=0.2
smudge_per_wbc=0.3 debris_per_mm2=600 platelet_clumps_per_mm2=300`` with ``--precipitate-per-mm2 800``).
``--field-stop`` is the share of fields photographed through an eyepiece (:func:`field_stop`): the round
edge of its field stop crosses the frame, black beyond it, as in photographs taken with a phone held to
the eyepiece (the pig folder's); cells whose centre lies beyond the edge are not boxed. Default 0:
clumps and field stops in a chula + simulated training set made the other lab (pig) worse, not better
(docs/wbc-photos.md, "Platelet clumps and field stops").
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray
from scipy.special import erfc

from firmware_bridge.rigs import get_profile
from sim.accuracy import jitter_to_srgb8
from sim.maps import WBC_TYPES
from sim.microscope import Microscope
from sim.sample import SampleError, SmearConfig
from trainer.data.synthetic import render_stained_field
from trainer.errors import TrainerError

log = logging.getLogger(__name__)

PROFILE = "thesis-43"  # the 20x microscope the fields are rendered with (0.293 µm pixels)
STYLES = ("wright-giemsa", "mgg")
SMUDGE = "smudge"  # the class of a smudge cell's box: not a white cell to every reader of the folder
CLASSES = (*WBC_TYPES, SMUDGE)
DIFFERENTIALS = {"equal": (0.2, 0.2, 0.2, 0.2, 0.2), "blood": None}  # None: the simulator's normal blood


def field_stop(size_px: int, rng: np.random.Generator) -> NDArray[np.float32]:
    """Transmission ``(size, size)`` of an eyepiece's field stop as a camera held to the eyepiece sees it:
    a disc of radius 0.42–0.62 of the frame about a point near its centre, so that its edge crosses the
    frame; the edge blurred (the stop lies in the eyepiece's focal plane, the camera focuses on the
    image through it: 0.3–2 % of the radius); the light falling off towards the edge (vignetting,
    up to half at the edge); slightly elliptic (±10 %: photographs resized to a square)."""
    radius = rng.uniform(0.42, 0.62) * size_px
    cy, cx = (0.5 + rng.normal(0.0, 0.06, 2)) * size_px
    aspect = float(np.exp(rng.normal(0.0, 0.1)))
    yy, xx = np.mgrid[0:size_px, 0:size_px].astype(np.float32)
    r = np.hypot((yy - cy) * aspect, (xx - cx) / aspect) / radius
    edge = 0.5 * erfc((r - 1.0) / (np.sqrt(2.0) * rng.uniform(0.003, 0.02)))
    return (edge * (1.0 - rng.uniform(0.0, 0.5) * np.minimum(r, 1.0) ** 4)).astype(np.float32)


def yolo_lines(cells: list[dict[str, Any]], size_px: int, pixel_um: float,
               transmission: NDArray[np.float32] | None = None) -> list[str]:
    """YOLO lines of the white cells and smudge cells (class :data:`SMUDGE`) whose centre lies on a
    ``size_px`` square frame (box = the cell's radius around its centre, clipped to the frame) and,
    under a field stop's ``transmission``, inside it (≥ 0.5)."""
    lines = []
    for c in cells:
        x, y = c["center_px"]
        if c["type"] not in CLASSES or not (0 <= x < size_px and 0 <= y < size_px):
            continue
        if transmission is not None and transmission[min(round(y), size_px - 1), min(round(x), size_px - 1)] < 0.5:
            continue
        r = c["radius_um"] / pixel_um
        x0, x1 = max(x - r, 0.0), min(x + r, size_px - 1.0)
        y0, y1 = max(y - r, 0.0), min(y + r, size_px - 1.0)
        lines.append(f"{CLASSES.index(c['type'])} {(x0 + x1) / 2 / size_px:.6f} {(y0 + y1) / 2 / size_px:.6f} "
                     f"{(x1 - x0) / size_px:.6f} {(y1 - y0) / size_px:.6f}")
    return lines


def write_folder(out: Path, fields: int, size_px: int = 512, seed: int = 0, differential: str = "equal",
                 wbc_per_mm2: float = 300.0, lab_variation: float = 0.3, precipitate_per_mm2: float = 200.0,
                 smear: dict[str, float] | None = None, field_stop_share: float = 0.0) -> dict[str, Any]:
    """Render ``fields`` labelled photographs into ``out`` (refused if it already holds images);
    returns the summary also written to ``out/synth.json``. ``smear``: other ``SmearConfig`` fields;
    ``field_stop_share``: the share of fields seen through an eyepiece's field stop."""
    if differential not in DIFFERENTIALS:
        raise TrainerError(f"differential: expected one of {', '.join(DIFFERENTIALS)}, found {differential!r}")
    if fields < 1 or size_px < 64:
        raise TrainerError(f"expected at least 1 field of at least 64 px, found {fields} of {size_px} px")
    if not (0 < wbc_per_mm2 <= 3000 and 0 <= lab_variation <= 1 and 0 <= precipitate_per_mm2 <= 1e4
            and 0 <= field_stop_share <= 1):
        raise TrainerError(f"expected white cells per mm² in (0, 3000], a lab variation in [0, 1], precipitate "
                           f"per mm² in [0, 10000] and a field-stop share in [0, 1], found {wbc_per_mm2}, "
                           f"{lab_variation}, {precipitate_per_mm2}, {field_stop_share}")
    config: dict[str, Any] = {**(smear or {}), "wbc_per_mm2": wbc_per_mm2}
    if DIFFERENTIALS[differential]:
        config["wbc_fractions"] = DIFFERENTIALS[differential]
    try:
        SmearConfig.from_dict(config)
    except SampleError as exc:
        raise TrainerError(f"--smear: {exc}") from exc
    images, labels = out / "images", out / "labels"
    if images.is_dir() and any(images.iterdir()):
        raise TrainerError(f"{images} already holds images; choose an empty --out (fields are not mixed)")
    images.mkdir(parents=True, exist_ok=True)
    labels.mkdir(parents=True, exist_ok=True)
    pixel_um = Microscope(get_profile(PROFILE)).pixel_um
    rng = np.random.default_rng(seed)
    counts = dict.fromkeys(CLASSES, 0)
    t0 = time.perf_counter()
    for k in range(fields):
        raw, cells = render_stained_field(size_px, seed * 100_003 + k, STYLES[k % 2], lab_variation, config, PROFILE,
                                          precipitate_per_mm2)
        stop = field_stop(size_px, rng) if field_stop_share and rng.random() < field_stop_share else None
        if stop is not None:
            raw = (16.0 + (raw.astype(np.float32) - 16.0) * stop).astype(np.uint16)
        rgb = np.moveaxis(jitter_to_srgb8(raw, rng), 0, -1)
        cv2.imwrite(str(images / f"synth{k:05d}.png"), np.ascontiguousarray(rgb[..., ::-1]))
        lines = yolo_lines(cells, size_px, pixel_um, stop)
        (labels / f"synth{k:05d}.txt").write_text("".join(f"{line}\n" for line in lines))
        for line in lines:
            counts[CLASSES[int(line.split()[0])]] += 1
        if (k + 1) % 50 == 0 or k + 1 == fields:
            log.info("%d/%d fields (%.0f s)", k + 1, fields, time.perf_counter() - t0)
    (out / "classes.txt").write_text("".join(f"{t}\n" for t in CLASSES))
    summary = {"fields": fields, "size_px": size_px, "pixel_size_um": round(pixel_um, 5), "seed": seed,
               "differential": differential, "lab_variation": lab_variation,
               "precipitate_per_mm2": precipitate_per_mm2, "field_stop_share": field_stop_share, "smear": config,
               "styles": list(STYLES),
               "cells": {t: counts[t] for t in WBC_TYPES}, "smudge_cells": counts[SMUDGE]}
    (out / "synth.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def _key_value(text: str) -> tuple[str, float]:
    key, _, value = text.partition("=")
    try:
        return key.strip(), float(value)
    except ValueError:
        raise TrainerError(f"--smear: expected KEY=NUMBER (a SmearConfig field), found {text!r}") from None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, required=True, help="the folder to write (images/, labels/)")
    p.add_argument("--fields", type=int, default=300)
    p.add_argument("--size", type=int, default=512, help="field side in pixels (0.293 µm each)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--differential", choices=tuple(DIFFERENTIALS), default="equal",
                   help="white-cell types: each a fifth (equal) or as in normal blood")
    p.add_argument("--wbc-per-mm2", type=float, default=300.0)
    p.add_argument("--lab-variation", type=float, default=0.3, help="stain variation between labs, 0 .. 1")
    p.add_argument("--precipitate-per-mm2", type=float, default=200.0, help="stain precipitate particles")
    p.add_argument("--field-stop", type=float, default=0.0,
                   help="share of fields seen through an eyepiece's round field stop (0 .. 1)")
    p.add_argument("--smear", action="append", default=[], metavar="KEY=VALUE",
                   help="a sim SmearConfig field, e.g. platelets_per_rbc=0.2 (repeat for several)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        smear = dict(_key_value(kv) for kv in args.smear)
        s = write_folder(args.out, args.fields, args.size, args.seed, args.differential, args.wbc_per_mm2,
                         args.lab_variation, args.precipitate_per_mm2, smear, args.field_stop)
    except TrainerError as exc:
        raise SystemExit(f"error: {exc}") from exc
    print(f"{args.out}: {s['fields']} fields, white cells {s['cells']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
