"""Training material of the white-cell verifier (:mod:`trainer.wbc.verify`), torch-free.

- :func:`harvest`: one labelled photograph as itself and ``versions - 1`` photographs "from another
  lab" (:func:`trainer.wbc.cnn_aug.lab_jitter`, applied to the linear RGB BEFORE the flat field
  and the density, each at a pixel size off by up to ±``SCALE_JITTER``), and per version the crops
  around (a) every labelled cell's centre and every first-stage candidate inside a labelled box
  (positives) and (b) every candidate in no box (negatives; only in folders whose labels box every
  white cell, and never within ``CUT_UM`` of the image border, where labs disagree about boxing cut
  cells). Candidates may come from several proposers (``cnn`` ``.onnx`` models or ``net`` ``.npz``
  weights): their union, a point within ``UNION_UM`` of an earlier proposer's kept once, so the
  verifier also sees the confusers a strong first stage no longer proposes on its own training
  images. Crops are ``SHIFT_PX`` wider on every side than the verifier's, for random shifts.
- :func:`tuning_record`: the candidates of one held-out photograph (unjittered) with their crops,
  first-stage heat and which labelled boxes each one hits under the bench's match rule.
- :func:`pr_at`, :func:`choose_combination`: recall and precision of any combined-score threshold,
  and the rule that picks the weight and threshold stored with the verifier.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from trainer.wbc.cnn import cnn_heat_map, load_cnn
from trainer.wbc.cnn_aug import lab_jitter
from trainer.wbc.cnn_hard import f1_threshold, recall_threshold
from trainer.wbc.density import CUT_UM, NMS_UM, WORK_UM, Density, density_input, peaks, to_image_px
from trainer.wbc.finder import read_linear
from trainer.wbc.labelled import Box, read_boxes
from trainer.wbc.verify import CROP_PX, combine, crops, fine_density

SCALE_JITTER = 0.2  # log pixel-size spread of the jittered versions (±20 %)
SHIFT_PX = 4  # random shift of a training crop (2 µm)
TOL_PX = 5.0  # the bench's match tolerance (image px)
UNION_UM = 3.0  # candidates of several proposers closer than this are one (half the peaks' spacing)
WEIGHTS = (0.0, 0.25, 0.5, 0.75, 1.0)
THRESHOLDS = tuple(float(t) for t in np.round(np.arange(0.05, 0.951, 0.025), 3))


@dataclass(frozen=True)
class Harvest:
    """Training crops ``(k, 4, CROP_PX + 2 SHIFT_PX, ...)`` float16 and their labels ``(k,)`` (1 = cell)."""

    x: NDArray[np.float16]
    y: NDArray[np.float32]


class Candidates(Protocol):
    """What :func:`pr_at` reads of a tuning photograph: first-stage heat ``s1`` ``(n,)`` of its candidates,
    ``hits`` ``(n, boxes)`` (candidate inside the grown box) and ``boxes`` = its labelled cells."""

    @property
    def s1(self) -> NDArray[np.float32]: ...

    @property
    def hits(self) -> NDArray[np.bool_]: ...

    @property
    def boxes(self) -> int: ...


@dataclass(frozen=True)
class TuningImage:
    """A held-out photograph's candidates: crops ``(n, 4, CROP_PX, CROP_PX)``, heat ``s1`` ``(n,)``,
    ``hits`` ``(n, boxes)`` (candidate inside the grown box); ``boxes`` = its labelled cells."""

    x: NDArray[np.float32]
    s1: NDArray[np.float32]
    hits: NDArray[np.bool_]
    boxes: int


def hit_matrix(xy: NDArray[np.float32], boxes: Sequence[Box], tol: float = TOL_PX) -> NDArray[np.bool_]:
    """``(n, m)``: point ``xy[i]`` (image px) lies inside box ``j`` grown by ``tol`` px."""
    pts = np.asarray(xy, np.float32).reshape(-1, 2)
    out = np.zeros((len(pts), len(boxes)), bool)
    for j, b in enumerate(boxes):
        out[:, j] = ((pts[:, 0] >= b.x0 - tol) & (pts[:, 0] <= b.x1 + tol)
                     & (pts[:, 1] >= b.y0 - tol) & (pts[:, 1] <= b.y1 + tol))
    return out


def proposer_heat(d: Density, model: str) -> NDArray[np.float32]:
    """Centre heat map ``(h, w)`` at ``WORK_UM`` of a proposer: a ``cnn`` ``.onnx`` or ``net`` ``.npz``."""
    if model.endswith(".onnx"):
        return cnn_heat_map(load_cnn(model), d.density, d.field)
    if model.endswith(".npz"):
        from trainer.wbc.net import heat_map, load_net  # torch: only when a net proposes

        return heat_map(load_net(model)[0], d.density)
    raise ValueError(f"expected a proposer as a cnn .onnx or a net .npz file, found {model!r}")


def _peaks_xy(prob: NDArray[np.float32], threshold: float, zoom: float
              ) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    cands = peaks(prob, threshold, NMS_UM / WORK_UM)
    xy = np.array([to_image_px(r, c, zoom) for r, c, _ in cands], np.float32).reshape(-1, 2)
    return xy, np.array([p for _, _, p in cands], np.float32)


def union_points(sets: Sequence[NDArray[np.float32]], min_px: float) -> NDArray[np.float32]:
    """The points of every ``(n_k, 2)`` array in ``sets``, in order, leaving out any point closer than
    ``min_px`` to one already kept from an earlier array (within one array all are kept)."""
    kept = np.zeros((0, 2), np.float32)
    for pts in sets:
        pts = np.asarray(pts, np.float32).reshape(-1, 2)
        if len(kept) and len(pts):
            near = np.linalg.norm(pts[:, None] - kept[None], axis=2).min(axis=1) < min_px
            pts = pts[~near]
        kept = np.concatenate([kept, pts])
    return kept


def _candidates(rgb: NDArray[np.float32], pixel_um: float, model: str, threshold: float
                ) -> tuple[NDArray[np.float32], NDArray[np.float32], NDArray[np.float32], NDArray[np.bool_], float]:
    """``(image xy (n, 2), heat (n,), fine density, fine field, fine zoom)`` of one photograph."""
    d = density_input(rgb, pixel_um)
    xy, heat = _peaks_xy(proposer_heat(d, model), threshold, d.zoom)
    fine, field, zoom = fine_density(d, pixel_um)
    return xy, heat, fine, field, zoom


def _proposed(rgb: NDArray[np.float32], pixel_um: float, models: Sequence[str], threshold: float
              ) -> tuple[NDArray[np.float32], NDArray[np.float32], NDArray[np.bool_], float]:
    """``(image xy (n, 2), fine density, fine field, fine zoom)``: the union of ``models``' candidates."""
    d = density_input(rgb, pixel_um)
    xy = union_points([_peaks_xy(proposer_heat(d, m), threshold, d.zoom)[0] for m in models], UNION_UM / pixel_um)
    fine, field, zoom = fine_density(d, pixel_um)
    return xy, fine, field, zoom


def harvest(path: Path, pixel_um: float, versions: int, seed: int, models: Sequence[str], negatives: bool,
            threshold: float = 0.05) -> Harvest:
    """Positive and negative crops of one labelled photograph and its jittered versions (module doc);
    ``models``: the proposers of candidates (their union)."""
    rng = np.random.default_rng([seed, int(hashlib.sha1(path.name.encode()).hexdigest()[:8], 16)])
    rgb = read_linear(path)
    h, w = rgb.shape[1:]
    boxes = read_boxes(path, w, h)
    centres = np.array([[(b.x0 + b.x1) / 2, (b.y0 + b.y1) / 2] for b in boxes], np.float32).reshape(-1, 2)
    xs, ys = [], []
    for k in range(versions):
        img, ps = (rgb, pixel_um) if k == 0 else (lab_jitter(rgb, pixel_um, rng),
                                                   pixel_um * math.exp(rng.uniform(-SCALE_JITTER, SCALE_JITTER)))
        xy, fine, field, zoom = _proposed(img, ps, models, threshold)
        inside = hit_matrix(xy, boxes).any(axis=1)
        band = CUT_UM / ps
        border = (xy[:, 0] < band) | (xy[:, 1] < band) | (xy[:, 0] > w - 1 - band) | (xy[:, 1] > h - 1 - band)
        neg = xy[~inside & ~border] if negatives else np.zeros((0, 2), np.float32)
        pts = np.concatenate([centres, xy[inside], neg])
        xs.append(crops(fine, field, (pts + 0.5) * zoom - 0.5, CROP_PX + 2 * SHIFT_PX).astype(np.float16))
        ys.append(np.r_[np.ones(len(centres) + int(inside.sum())), np.zeros(len(neg))].astype(np.float32))
    return Harvest(np.concatenate(xs), np.concatenate(ys))


def tuning_record(path: Path, pixel_um: float, model: str, threshold: float) -> TuningImage:
    """The candidates (heat ≥ ``threshold``) of one held-out photograph, as it is (no jitter)."""
    rgb = read_linear(path)
    boxes = read_boxes(path, rgb.shape[2], rgb.shape[1])
    xy, s1, fine, field, zoom = _candidates(rgb, pixel_um, model, threshold)
    return TuningImage(crops(fine, field, (xy + 0.5) * zoom - 0.5), s1, hit_matrix(xy, boxes), len(boxes))


def pr_at(images: Sequence[Candidates], s2: Sequence[NDArray[np.float32]], weight: float, threshold: float
          ) -> tuple[float, float]:
    """``(recall, precision)`` over ``images`` when candidates with a combined score (second-stage
    probabilities ``s2`` per image) ≥ ``threshold`` are kept, under the bench's match rule."""
    nb = nf = nk = nc = 0
    for im, p in zip(images, s2, strict=True):
        keep = combine(im.s1, p, weight) >= threshold if len(im.s1) else np.zeros(0, bool)
        kept = im.hits[keep]
        nb, nf = nb + im.boxes, nf + int(kept.any(axis=0).sum())
        nk, nc = nk + int(keep.sum()), nc + int(kept.any(axis=1).sum())
    return nf / max(nb, 1), nc / max(nk, 1)


def choose_combination(folders: Sequence[Sequence[Candidates]], s2: Sequence[Sequence[NDArray[np.float32]]],
                       precise: Sequence[bool], target: float = 0.97, margin: float = 0.01
                       ) -> tuple[float, float, list[dict[str, float]]]:
    """``(weight, threshold, table)``: per weight in ``WEIGHTS`` the threshold of the first stage's
    recall rule (:func:`trainer.wbc.cnn_hard.recall_threshold`: per folder the highest with
    recall ≥ ``target + margin``, then the lowest over folders), then the weight of best mean F1 over
    the folders flagged ``precise`` (labels that box every white cell; others only bound recall).
    ``table``: per weight its threshold and each folder's recall and precision there."""
    if not any(precise):
        raise ValueError("expected at least one folder whose labels box every white cell to rate precision")
    best: tuple[float, float, float] = (-1.0, 0.0, 0.5)
    table = []
    for wgt in WEIGHTS:
        curves = [[(t, *pr_at(ims, p, wgt, t)) for t in THRESHOLDS] for ims, p in zip(folders, s2, strict=True)]
        thr = recall_threshold(curves, target, margin)
        row = {"weight": wgt, "threshold": thr}
        for k, curve in enumerate(curves):
            _, r, p = next(c for c in curve if c[0] == thr)
            row |= {f"recall_{k}": r, f"precision_{k}": p}
        _, f1 = f1_threshold([[next(c for c in curve if c[0] == thr)]
                              for curve, ok in zip(curves, precise, strict=True) if ok])
        table.append(row | {"f1": f1})
        if f1 > best[0] + 1e-9:
            best = (f1, wgt, thr)
    return best[1], best[2], table
