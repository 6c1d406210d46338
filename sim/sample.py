"""Vector description of a thin-smear field, deterministic from a seed.

:func:`make_smear` lays out one field of a dried, unstained peripheral-blood thin smear: a red-cell
monolayer (cells mostly separate or touching), platelets in the gaps, white cells at a given
density and type mix (never overlapping each other, never under red cells), smudge cells, debris
and dust. Coordinates are µm with the origin at the field's top-left corner, x to the right and
y down. Objects are also placed in a margin around the field (``SmearConfig.margin_um``), so that
cells cut by the border and the margin seen by a misregistered re-scan exist.

:func:`wbc_truth` reports the white cells for the simulator's ground truth.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy.spatial import cKDTree

from sim.cells import (
    KINDS,
    WBC_BOUND,
    WBC_DIAMETER_UM,
    Part,
    SmearObject,
    build_debris,
    build_dust,
    build_platelet,
    build_rbc,
    build_smudge,
    build_wbc,
    textured_rbc,
)
from sim.maps import WBC_TYPES
from sim.shapes import Blob, inside
from sim.smearconfig import SampleError, SmearConfig

__all__ = ["KINDS", "Part", "SampleError", "Smear", "SmearConfig", "SmearObject", "make_smear", "wbc_truth"]


@dataclass(frozen=True)
class Smear:
    """One field: ``size_um`` (width, height) and its objects (``objects[i].id == i``)."""

    size_um: tuple[float, float]
    objects: tuple[SmearObject, ...]
    stained: bool = False
    stain_style: str = ""

    def of_kind(self, kind: str) -> tuple[SmearObject, ...]:
        if kind not in KINDS:
            raise SampleError(f"unknown object kind {kind!r}; valid kinds: {', '.join(KINDS)}")
        return tuple(o for o in self.objects if o.kind == kind)


# ---------------------------------------------------------------- placement

Discs = tuple[NDArray[np.float64], NDArray[np.float64]]  # centres (N, 2), radii (N,)
Rule = tuple[Discs, float, float]  # blockers, factor on the sum of radii, extra gap (µm)


def _clear(xy: NDArray[np.float64], r: NDArray[np.float64], rules: list[Rule]) -> NDArray[np.bool_]:
    """Which candidates ``xy`` (M, 2) with radii ``r`` keep clear of every rule's discs."""
    ok = np.ones(len(xy), bool)
    for (bxy, br), factor, gap in rules:
        if len(bxy) == 0:
            continue
        d = np.hypot(xy[:, None, 0] - bxy[None, :, 0], xy[:, None, 1] - bxy[None, :, 1])
        ok &= np.all(d >= (r[:, None] + br[None, :]) * factor + gap, axis=1)
    return ok


def _place_each(
    rng: np.random.Generator, region: tuple[float, float, float, float], radii: NDArray[np.float64],
    rules: list[Rule], self_factor: float | None, gap: float = 0.0, attempts: int = 128,
) -> tuple[Discs, list[int]]:
    """Place discs one by one (few objects); returns placed discs and indices into ``radii``."""
    x0, y0, x1, y1 = region
    placed_xy: list[tuple[float, float]] = []
    placed_r: list[float] = []
    kept: list[int] = []
    for i, r in enumerate(radii):
        cand = rng.uniform((x0, y0), (x1, y1), size=(attempts, 2))
        rr = np.full(attempts, r)
        own: list[Rule] = [] if self_factor is None else [((np.asarray(placed_xy).reshape(-1, 2),
                                                            np.asarray(placed_r)), self_factor, gap)]
        ok = np.flatnonzero(_clear(cand, rr, rules + own))
        if len(ok):
            placed_xy.append((float(cand[ok[0], 0]), float(cand[ok[0], 1])))
            placed_r.append(float(r))
            kept.append(i)
    return (np.asarray(placed_xy, float).reshape(-1, 2), np.asarray(placed_r, float)), kept


def _rsa(
    rng: np.random.Generator, region: tuple[float, float, float, float],
    radius_fn: Callable[[int], NDArray[np.float64]],
    n_target: int, rules: list[Rule], self_factor: float, batch: int = 256,
) -> Discs:
    """Random sequential adsorption of many discs (the red-cell monolayer)."""
    x0, y0, x1, y1 = region
    acc_xy = np.zeros((0, 2))
    acc_r = np.zeros(0)
    attempts = 0
    while len(acc_r) < n_target and attempts < 40 * max(n_target, 1):
        cand = rng.uniform((x0, y0), (x1, y1), size=(batch, 2))
        cr = radius_fn(batch)
        attempts += batch
        ok = _clear(cand, cr, rules)
        if len(acc_r):
            k = min(12, len(acc_r))
            dist, idx = cKDTree(acc_xy).query(cand, k=k)
            dist, idx = dist.reshape(batch, k), idx.reshape(batch, k)
            ok &= np.all(dist >= (cr[:, None] + acc_r[idx]) * self_factor, axis=1)
        new_xy: list[NDArray[np.float64]] = []
        new_r: list[float] = []
        for i in np.flatnonzero(ok):
            if new_r:
                d = np.hypot(*(np.asarray(new_xy) - cand[i]).T)
                if np.any(d < (cr[i] + np.asarray(new_r)) * self_factor):
                    continue
            new_xy.append(cand[i])
            new_r.append(float(cr[i]))
            if len(acc_r) + len(new_r) >= n_target:
                break
        if new_r:
            acc_xy = np.vstack([acc_xy, np.asarray(new_xy)])
            acc_r = np.concatenate([acc_r, new_r])
    return acc_xy, acc_r


def _check_size(size_um: tuple[float, float]) -> tuple[float, float]:
    try:
        w, h = (float(v) for v in size_um)
    except (TypeError, ValueError):
        raise SampleError(f"size_um must be (width, height) in µm, got {size_um!r}") from None
    if not (w > 0 and h > 0 and math.isfinite(w) and math.isfinite(h)):
        raise SampleError(f"size_um must be positive and finite, got {size_um!r}")
    return w, h


#: The default smear (a frozen config, shared).
DEFAULT_SMEAR = SmearConfig()


#: Red-cell cover a monolayer holds (random sequential packing with 6 % overlap jams just above it); the
#: cells of a higher ``rbc_cover`` that the monolayer cannot take pile on it.
MONOLAYER_COVER = 0.6


def _with_clumps(rng: np.random.Generator, region: tuple[float, float, float, float], plt: Discs, big: Discs,
                 expected: float) -> Discs:
    """``plt`` plus Poisson(``expected``) platelet clumps: 3 + Poisson(8) platelets each, scattered
    about a centre clear of the white cells over a disc that grows with their number (they pile)."""
    n = int(rng.poisson(expected))
    sizes = 3 + rng.poisson(8.0, n)
    centres, kept = _place_each(rng, region, 0.9 * np.sqrt(sizes), [(big, 1.0, 0.5)], None, attempts=32)
    xy, rr = [plt[0]], [plt[1]]
    for (cx, cy), k in zip(centres[0], sizes[kept], strict=True):
        xy.append(np.array([cx, cy]) + rng.normal(0.0, 0.55 * math.sqrt(k), (k, 2)))
        rr.append(rng.uniform(1.0, 1.5, k))
    return np.vstack(xy), np.concatenate(rr)


def make_smear(size_um: tuple[float, float], seed: int, config: SmearConfig = DEFAULT_SMEAR) -> Smear:
    """Lay out a smear field of ``size_um`` = (width, height) µm, deterministic from ``seed``."""
    w, h = _check_size(size_um)
    if not isinstance(seed, int | np.integer) or seed < 0:
        raise SampleError(f"seed must be a non-negative integer, got {seed!r}")
    cfg = config
    # Texture and clumps draw from the last children: smears without them are what they always were.
    rng_wbc, rng_rbc, rng_plt, rng_misc, rng_build, rng_texture, rng_clump = (
        np.random.default_rng(s) for s in np.random.SeedSequence(int(seed)).spawn(7))
    m = cfg.margin_um
    region = (-m, -m, w + m, h + m)
    area_mm2 = (w + 2 * m) * (h + 2 * m) * 1e-6

    # White cells first (rare, large, never overlapping), then smudges beside them.
    n_wbc = int(rng_wbc.poisson(cfg.wbc_per_mm2 * area_mm2))
    types = rng_wbc.choice(len(WBC_TYPES), size=n_wbc, p=np.asarray(cfg.wbc_fractions) / sum(cfg.wbc_fractions))
    radii = np.array([0.5 * rng_wbc.uniform(*WBC_DIAMETER_UM[WBC_TYPES[t]]) for t in types])
    wbc, kept = _place_each(rng_wbc, region, radii * WBC_BOUND, [], self_factor=1.0, gap=1.0)
    wbc_types = [WBC_TYPES[types[i]] for i in kept]
    n_smudge = int(rng_wbc.poisson(cfg.smudge_per_wbc * cfg.wbc_per_mm2 * area_mm2))
    smudge, _ = _place_each(rng_wbc, region, rng_wbc.uniform(5.0, 9.0, n_smudge) * 1.5,
                            [(wbc, 1.0, 1.0)], self_factor=1.0)
    big = (np.vstack([wbc[0], smudge[0]]), np.concatenate([wbc[1], smudge[1]]))

    # Red-cell monolayer around them, then platelets in the gaps.
    mean_r, sd_r = 0.5 * cfg.rbc_diameter_um, 0.5 * cfg.rbc_diameter_sd_um

    def rbc_radius(n: int) -> NDArray[np.float64]:
        return np.clip(rng_rbc.normal(mean_r, sd_r, n), 0.6 * mean_r, 1.4 * mean_r)

    n_rbc = round(cfg.rbc_cover * (w + 2 * m) * (h + 2 * m) / (math.pi * (mean_r**2 + sd_r**2)))
    rbc = _rsa(rng_rbc, region, rbc_radius, n_rbc, [(big, 1.0, 0.3)], self_factor=1.0 - cfg.rbc_overlap)
    if cfg.rbc_cover > MONOLAYER_COVER and (short := n_rbc - len(rbc[1])) > 0:
        # The monolayer jams near 0.6: the cells beyond lie on it, a second layer as in a smear's thick part.
        # Up to MONOLAYER_COVER a smear keeps the monolayer it always had (short of target where cells crowd).
        piled, _ = _place_each(rng_rbc, region, rbc_radius(short), [(big, 1.0, 0.3)], self_factor=1.0 - cfg.rbc_overlap)
        rbc = (np.vstack([rbc[0], piled[0]]), np.concatenate([rbc[1], piled[1]]))
    n_plt = int(rng_plt.poisson(cfg.platelets_per_rbc * len(rbc[1])))
    plt, _ = _place_each(rng_plt, region, rng_plt.uniform(1.0, 1.5, n_plt),
                         [(big, 1.0, 0.5), (rbc, 0.85, 0.0)], self_factor=1.0, attempts=64)
    if cfg.platelet_clumps_per_mm2:
        plt = _with_clumps(rng_clump, region, plt, big, cfg.platelet_clumps_per_mm2 * area_mm2)

    n_debris = int(rng_misc.poisson(cfg.debris_per_mm2 * area_mm2))
    debris, _ = _place_each(rng_misc, region, rng_misc.uniform(0.3, 1.5, n_debris), [(wbc, 1.0, 0.5)], None, attempts=8)
    n_dust = int(rng_misc.poisson(cfg.dust_per_mm2 * area_mm2))
    dust, _ = _place_each(rng_misc, region, rng_misc.uniform(4.0, 15.0, n_dust), [], None, attempts=1)

    builders = [("dust", dust, build_dust), ("rbc", rbc, build_rbc), ("platelet", plt, build_platelet),
                ("smudge", (smudge[0], smudge[1] / 1.5), build_smudge), ("debris", debris, build_debris)]
    objects: list[SmearObject] = []
    for kind, (xy, rr), build in builders:
        for (x, y), r in zip(xy, rr, strict=True):
            parts = build(rng_build, (float(x), float(y)), float(r), cfg)
            if kind == "rbc" and cfg.rbc_texture:
                parts = textured_rbc(parts, rng_texture, cfg)
            objects.append(SmearObject(len(objects), kind, (float(x), float(y)), parts))
    for (x, y), r, t in zip(wbc[0], wbc[1] / WBC_BOUND, wbc_types, strict=True):
        parts = build_wbc(rng_build, (float(x), float(y)), float(r), t, cfg)
        objects.append(SmearObject(len(objects), "wbc", (float(x), float(y)), parts, wbc_type=t))
    return Smear((w, h), tuple(objects))


# ---------------------------------------------------------------- truth


def _union_area(parts: list[Part], step_um: float = 0.05) -> float:
    """Area (µm²) of the union of parts' shapes, counted on a fine grid."""
    if not parts:
        return 0.0
    b = np.array([p.shape.bounds() for p in parts])
    x0, y0, x1, y1 = b[:, 0].min(), b[:, 1].min(), b[:, 2].max(), b[:, 3].max()
    xs = np.arange(x0 + step_um / 2, x1, step_um, dtype=np.float32)[None, :]
    ys = np.arange(y0 + step_um / 2, y1, step_um, dtype=np.float32)[:, None]
    mask = np.zeros((ys.shape[0], xs.shape[1]), bool)
    for p in parts:
        mask |= inside(p.shape, xs, ys)
    return float(mask.sum() * step_um**2)


def wbc_truth(smear: Smear) -> list[dict[str, Any]]:
    """White cells of ``smear`` (also those cut by the border or in the margin).

    Each entry: ``id``, ``type``, ``center_um`` [x, y], ``radius_um`` (largest outline radius of
    the cell body about its centre), ``bbox_um`` [x0, y0, x1, y1] (tight), ``nucleus_area_um2``
    and ``cell_area_um2``.
    """
    out = []
    for obj in smear.of_kind("wbc"):
        body = next(p.shape for p in obj.parts if p.structure == "cytoplasm")
        if not isinstance(body, Blob):
            raise SampleError(f"white cell {obj.id} has a non-Blob cytoplasm body")
        phi = np.linspace(0.0, 2 * math.pi, 1440, endpoint=False, dtype=np.float32)
        r, _ = body.radius_at(np.cos(phi), np.sin(phi))
        xs = body.center_um[0] + r * np.cos(phi)
        ys = body.center_um[1] + r * np.sin(phi)
        nucleus = [p for p in obj.parts if p.structure == "nucleus"]
        out.append({
            "id": obj.id,
            "type": obj.wbc_type,
            "center_um": [body.center_um[0], body.center_um[1]],
            "radius_um": float(r.max()),
            "bbox_um": [float(xs.min()), float(ys.min()), float(xs.max()), float(ys.max())],
            "nucleus_area_um2": _union_area(nucleus),
            "cell_area_um2": float(0.5 * np.sum(r.astype(np.float64) ** 2) * (2 * math.pi / len(phi))),
        })
    return out


def smudge_truth(smear: Smear) -> list[dict[str, Any]]:
    """Smudge cells (white cells crushed in the smear) of ``smear``: ``id``, ``center_um`` [x, y] and
    ``radius_um`` (half the larger side of the parts' bounding box)."""
    out = []
    for obj in smear.of_kind("smudge"):
        b = np.array([p.shape.bounds() for p in obj.parts])
        x0, y0, x1, y1 = b[:, 0].min(), b[:, 1].min(), b[:, 2].max(), b[:, 3].max()
        out.append({"id": obj.id, "center_um": [float(obj.center_um[0]), float(obj.center_um[1])],
                    "radius_um": float(max(x1 - x0, y1 - y0) / 2)})
    return out

