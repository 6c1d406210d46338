"""Hard negatives, ensembling and the threshold rule of the convolutional white-cell finder.

Pure functions (numpy), used by :mod:`trainer.wbc.cnn_train` and
:mod:`trainer.wbc.cnn_ensemble`:

- :func:`hard_negatives`: where an earlier model's heat map peaks away from every labelled cell
  (on pig: platelet clumps, stain precipitate, smudged cells, red cells). Training then centres some
  crops there and up-weights the loss around them (:func:`negative_weight`), so the few confusers
  of a field are not drowned by its many easy background pixels. Where a folder's labels omit
  real cells (chula boxes one cell per photograph, so most of its "false alarms" are intact white
  cells), the same points are ignored by the loss instead of emphasised.
- :func:`mean_probability`: the ensemble's heat map, the mean of its members' centre probabilities
  (members disagree mostly on the confusers, so averaging lowers them more than the cells).
- :func:`recall_threshold`: the threshold rule. Moving to another lab lowers a learned model's
  scores on that lab's cells (its stain and camera were never seen), so a threshold picked for the
  best F1 on one lab drops recall on another (the pig-only second seed: 0.775, chula recall 0.647).
  The rule takes, per tuning folder, the highest threshold whose held-out recall still reaches the
  target plus a margin, then the lowest of those over the folders.
- :func:`set_reference`: the same shift, measured without labels: the typical white-cell score of a
  set of photographs (one lab, slide batch or scan) is the median over its photographs of each one's
  strongest heat-map peak (a white cell in most photographs that hold one). A relative threshold
  ``alpha x reference`` (``alpha`` chosen on the tuning folders' held-out images, stored with the
  model) follows a lab whose cells the model scores lower, as the ``auto`` pixel size follows its
  red cells. It needs most photographs of the set to show a white cell.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray


def hard_negatives(peaks_xy: NDArray[np.float32], centres: NDArray[np.float32], tol: float = 2.0
                   ) -> NDArray[np.float32]:
    """The peaks ``(n, 2)`` (x, y) that lie in no labelled box: ``centres`` ``(m, 3)`` are
    (x, y, box side) in the same pixels; a peak within ``side / 2 + tol`` of a centre on both axes
    is that cell. Returns ``(k, 2)``."""
    pts = np.asarray(peaks_xy, np.float32).reshape(-1, 2)
    c = np.asarray(centres, np.float32).reshape(-1, 3)
    if not len(pts) or not len(c):
        return pts
    half = c[None, :, 2] / 2 + tol
    inside = (np.abs(pts[:, None, 0] - c[None, :, 0]) <= half) & (np.abs(pts[:, None, 1] - c[None, :, 1]) <= half)
    return pts[~inside.any(axis=1)]


def negative_weight(h: int, w: int, points: NDArray[np.float32], sigma: float, gain: float) -> NDArray[np.float32]:
    """Loss weight ``(h, w)``: 1, turned to ``1 + gain`` at each point ``(k, 2)`` (x, y) with a
    Gaussian fall-off of ``sigma`` px (overlapping bumps take the larger). ``gain`` -1 ignores the
    points (weight 0 there), > 0 emphasises them."""
    if sigma <= 0 or gain < -1:
        raise ValueError(f"expected sigma > 0 and gain >= -1, found sigma {sigma}, gain {gain}")
    bump = np.zeros((h, w), np.float32)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    for x, y in np.asarray(points, np.float32).reshape(-1, 2):
        bump = np.maximum(bump, np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * sigma**2)))
    return np.asarray(1 + gain * bump, np.float32)


def mean_probability(logits: Sequence[NDArray[np.float32]]) -> NDArray[np.float32]:
    """The ensemble's centre probability: the mean of the members' logistic(logits), same shape."""
    if not len(logits):
        raise ValueError("an ensemble needs at least one member; found none")
    shapes = {np.shape(z) for z in logits}
    if len(shapes) != 1:
        raise ValueError(f"the members' heat maps must have one shape; found {sorted(shapes)}")
    probs = [0.5 * (1.0 + np.tanh(0.5 * np.asarray(z, np.float64))) for z in logits]
    return np.asarray(np.mean(probs, axis=0), np.float32)


def recall_threshold(curves: Sequence[Sequence[tuple[float, float, float]]], target: float, margin: float
                     ) -> float:
    """The threshold rule: ``curves`` hold per tuning folder ``(threshold, recall, precision)`` on
    its held-out images; per folder the highest threshold whose recall is ≥ ``target + margin``
    (or, if no threshold reaches that, ≥ the folder's best recall), then the lowest of these over
    the folders."""
    if not curves or any(not c for c in curves):
        raise ValueError("expected at least one folder with at least one (threshold, recall, precision); found none")
    per_folder = []
    for curve in curves:
        need = min(target + margin, max(r for _, r, _ in curve))
        per_folder.append(max(t for t, r, _ in curve if r >= need))
    return float(min(per_folder))


def f1_threshold(curves: Sequence[Sequence[tuple[float, float, float]]]) -> tuple[float, float]:
    """The threshold of best mean F1 over the folders (first of ties) and that F1; ``curves`` as in
    :func:`recall_threshold`, every folder on the same thresholds."""
    if not curves or any(not c for c in curves):
        raise ValueError("expected at least one folder with at least one (threshold, recall, precision); found none")
    best = (-1.0, 0.5)
    for row in zip(*curves, strict=True):
        f1 = float(np.mean([2 * r * p / max(r + p, 1e-9) for _, r, p in row]))
        if f1 > best[0]:
            best = (f1, row[0][0])
    return best[1], best[0]


def set_reference(top_scores: Sequence[float]) -> float:
    """The set's typical white-cell score: the median of its photographs' strongest peaks
    (photographs without any peak, given as 0 or less, are left out)."""
    tops = [float(t) for t in top_scores if t > 0]
    if not tops:
        raise ValueError("expected at least one photograph with a heat-map peak for the set's reference; found none")
    return float(np.median(tops))
