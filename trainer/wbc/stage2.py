"""Second stage of the learned white-cell finder: accept or reject each candidate of the heat map.

The first stage (:mod:`trainer.wbc.net`) proposes every heat-map maximum above a low
threshold. For each, :func:`candidate_features` measures the normalised optical density (red cells
= 1 per channel, so every lab's stain looks alike) around the centre at ``WORK_UM``: the heat
score, the density per channel in rings out to a white cell's radius (a nucleus inside, cytoplasm
around it, red cells beyond), the peak density, fine texture (granules, precipitate), the area and
elongation of the dense blob in µm² at three density levels, how many parts it has (lobes), and the
distance to the field stop. A tiny MLP (:class:`Stage2`, plain arrays in ``wbc_stage2.npz``, no
pickle) turns them into the probability that the candidate is a white cell; candidates at or above
the stored threshold are kept. It rejects platelet clumps, stain precipitate and the field stop's
soft edge that the per-pixel heat map confuses with small or pale cells.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage as ndi

from trainer.errors import TrainerError

SHIPPED_STAGE2 = Path(__file__).with_name("wbc_stage2.npz")
RADIUS_UM = 12  # half-size of the patch measured around a candidate (at 1 µm per pixel)
RINGS_UM = ((0.0, 2.0), (2.0, 4.0), (4.0, 7.0), (7.0, 11.0))
BLOB_LEVELS = (1.5, 2.0, 3.0)  # x the red cells' summed density
EDGE_CLIP_UM = 15.0
FEATURE_NAMES = (
    "heat",
    *[f"{ch}_ring{k}" for ch in ("r", "g", "b", "sum") for k in range(len(RINGS_UM))],
    "peak", "texture", "red_share", "blue_share",
    *[f"area_{lv}" for lv in BLOB_LEVELS], *[f"elong_{lv}" for lv in BLOB_LEVELS], "lobes", "field_edge_um",
)
N_STAGE2 = len(FEATURE_NAMES)


def _ring_masks(radius: int) -> NDArray[np.float32]:
    """``(len(RINGS_UM), side²)`` ring weights (each sums to 1) on a ``2 radius + 1`` square."""
    yy, xx = np.mgrid[-radius:radius + 1, -radius:radius + 1]
    rr = np.hypot(yy, xx).ravel()
    masks = np.stack([((rr >= lo) & (rr <= hi) if lo == 0 else (rr > lo) & (rr <= hi)) for lo, hi in RINGS_UM])
    return (masks / masks.sum(axis=1, keepdims=True)).astype(np.float32)


def _blob(patch: NDArray[np.float32], level: float, disc: NDArray[np.bool_]) -> tuple[float, float, int]:
    """``(area px, elongation, parts)`` of the patch above ``level`` inside ``disc``, for the part
    nearest the centre (parts: all components, the lobes of a nucleus or a clump of platelets)."""
    mask = (patch > level) & disc
    lab, n = ndi.label(mask)
    if n == 0:
        return 0.0, 1.0, 0
    c = patch.shape[0] // 2
    ys, xs = np.nonzero(lab)
    k = lab[ys[np.argmin((ys - c) ** 2 + (xs - c) ** 2)], xs[np.argmin((ys - c) ** 2 + (xs - c) ** 2)]]
    yy, xx = np.nonzero(lab == k)
    if len(yy) < 3:
        return float(len(yy)), 1.0, n
    ev = np.linalg.eigvalsh(np.cov(np.stack([yy, xx]).astype(np.float64)) + 1e-3 * np.eye(2))
    return float(len(yy)), float(np.sqrt(ev[1] / max(ev[0], 1e-3))), n


def candidate_patches(x: NDArray[np.float32], field: NDArray[np.bool_], centres: list[tuple[int, int, float]]
                      ) -> tuple[NDArray[np.float32], NDArray[np.float32], float]:
    """``(patches (n, 3, side, side), field-edge distance (n,) px, red-cell density)`` around the
    candidates ``(row, col, heat)`` of normalised OD ``x`` (3, h, w) at 1 µm per pixel."""
    r = RADIUS_UM
    total = x.sum(axis=0)
    ref = float(np.median(total[total > 0.5])) if (total > 0.5).sum() > 50 else 3.0
    pad = np.pad(x, ((0, 0), (r, r), (r, r)), mode="edge")
    # distance to the field stop only: whether a set labels cells cut by the image border is its
    # annotators' convention, which the second stage must not learn
    edge = np.full(field.shape, EDGE_CLIP_UM) if field.all() else ndi.distance_transform_edt(field)
    patches = np.stack([pad[:, row:row + 2 * r + 1, col:col + 2 * r + 1] for row, col, _ in centres]
                       ) if centres else np.zeros((0, 3, 2 * r + 1, 2 * r + 1), np.float32)
    dist = np.array([edge[row, col] for row, col, _ in centres], np.float32)
    return patches.astype(np.float32), dist, ref


def patch_features(patches: NDArray[np.float32], heat: NDArray[np.float32], edge: NDArray[np.float32],
                   ref: float) -> NDArray[np.float32]:
    """Features ``(n, N_STAGE2)`` of candidate patches (see :func:`candidate_patches`)."""
    n, _, side, _ = patches.shape
    out = np.zeros((n, N_STAGE2), np.float32)
    r = side // 2
    rings = _ring_masks(r)
    yy, xx = np.mgrid[-r:r + 1, -r:r + 1]
    rr = np.hypot(yy, xx)
    core, inner, disc = rr <= 3, rr <= 5, rr <= 8
    for i in range(n):
        p = patches[i]
        total = p.sum(axis=0)
        ring = (np.concatenate([p, total[None]]).reshape(4, -1) @ rings.T).ravel()  # r, g, b, sum x rings
        sm = ndi.gaussian_filter(total, 0.7, mode="nearest")
        hp = total - ndi.gaussian_filter(total, 1.5, mode="nearest")
        share = p[:, core].mean(axis=1) / (total[core].mean() + 0.3)
        blobs = [_blob(sm, lv * ref, disc) for lv in BLOB_LEVELS]
        out[i] = [heat[i], *ring, sm[core].max(), hp[inner].std(), share[0], share[2],
                  *[np.log1p(a) for a, _, _ in blobs], *[e for _, e, _ in blobs], blobs[1][2],
                  min(float(edge[i]), EDGE_CLIP_UM)]
    return out


def candidate_features(x: NDArray[np.float32], prob: NDArray[np.float32], field: NDArray[np.bool_],
                       centres: list[tuple[int, int, float]]) -> NDArray[np.float32]:
    """Features ``(n, N_STAGE2)`` of candidates ``(row, col, heat)`` on normalised OD ``x`` (3, h, w)
    at 1 µm per pixel, its heat map ``prob`` and field-stop mask ``field``."""
    patches, edge, ref = candidate_patches(x, field, centres)
    heat = np.array([h for _, _, h in centres], np.float32)
    return patch_features(patches, heat, edge, ref)


@dataclass(frozen=True)
class Stage2:
    """Standardisation, a one-hidden-layer MLP and the thresholds of both stages."""

    mean: NDArray[np.float32]
    std: NDArray[np.float32]
    w1: NDArray[np.float32]  # (hidden, N_STAGE2)
    b1: NDArray[np.float32]
    w2: NDArray[np.float32]  # (hidden,)
    b2: float
    threshold: float  # keep candidates with probability >= this
    candidate_threshold: float  # first-stage heat-map threshold that proposes candidates

    def __post_init__(self) -> None:
        if self.w1.shape != (self.w2.shape[0], N_STAGE2) or self.mean.shape != (N_STAGE2,):
            raise TrainerError(f"white-cell stage 2: expected weights for {N_STAGE2} features, found w1 "
                               f"{self.w1.shape}, mean {self.mean.shape}; retrain with "
                               "python -m trainer.wbc.stage2_train")

    def predict(self, f: NDArray[np.float32]) -> NDArray[np.float32]:
        """Probability per candidate of features ``(n, N_STAGE2)``."""
        z = (f - self.mean) / self.std
        h = np.maximum(z @ self.w1.T + self.b1, 0)
        return (0.5 + 0.5 * np.tanh(0.5 * (h @ self.w2 + self.b2))).astype(np.float32)  # sigmoid, no overflow


def save_stage2(s: Stage2, path: Path) -> None:
    """Plain arrays (``.npz``, no pickle)."""
    np.savez_compressed(path, mean=s.mean, std=s.std, w1=s.w1, b1=s.b1, w2=s.w2, b2=np.float32(s.b2),
                        threshold=np.float32(s.threshold), candidate_threshold=np.float32(s.candidate_threshold),
                        features=np.array(FEATURE_NAMES))


@functools.lru_cache(maxsize=4)
def load_stage2(path: str = str(SHIPPED_STAGE2)) -> Stage2:
    """The second stage of a ``.npz`` written by :func:`save_stage2`."""
    p = Path(path)
    if not p.is_file():
        raise TrainerError(f"white-cell stage-2 weights not found at {p}; train them with "
                           "python -m trainer.wbc.stage2_train or set wbc.stage2 = 'off'")
    with np.load(p, allow_pickle=False) as z:
        names = tuple(str(n) for n in z["features"])
        if names != FEATURE_NAMES:
            raise TrainerError(f"{p}: trained on features {names}, this version measures {FEATURE_NAMES}; "
                               "retrain with python -m trainer.wbc.stage2_train")
        a = {k: z[k].astype(np.float32) for k in ("mean", "std", "w1", "b1", "w2")}
        return Stage2(a["mean"], a["std"], a["w1"], a["b1"], a["w2"], float(z["b2"]), float(z["threshold"]),
                      float(z["candidate_threshold"]))
