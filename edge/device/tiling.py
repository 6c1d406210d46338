"""Whole-field staining: a patch backend run over a whole field in tiles, without seams (numpy only).

A tile is a window of the field fed to the model; its output is weighted and summed into the field
(``out = Σ w·y / Σ w``). Tiles are the outer product of per-axis windows, so every method is a rule
for one axis (:func:`plan_axis`):

* ``independent`` — windows side by side, stride T; each output kept whole (the seed's Fig. 3.6a).
* ``overlap-crop`` — stride T/2, each window keeps its centre T/2 (inputs overlap, outputs do not;
  the seed's Fig. 3.6b).
* ``overlap-blend`` — the seed's whole-slide method (Bel et al.): each window's centre T/2 is
  weighted by a triangular function and crops overlap by 50 % (stride T/4).
* ``halo`` — stride T − 2h, each window keeps all but a halo of h pixels on every side, where h is
  the model's receptive-field radius: a kept pixel saw exactly the input the untiled model sees, so
  the tiled field equals one untiled pass. :func:`measure_halo` finds h with the backend itself,
  :func:`halo_tile` sizes tiles so the overlap costs little.

**Borders and corners.** Windows are shifted inside the field instead of running off it (the last
window on an axis starts at ``L − T``), and at the field's edge a window keeps (or, for the blend,
weighs fully) the outer side it would otherwise discard. The model's own border handling (zero
padding in every convolution) then happens exactly where it happens in an untiled pass, so edges
and corners are not degraded. Only a field smaller than a fixed tile is padded (reflection, at the
bottom / right); there the pixels near that edge differ from an untiled pass.

Compute: a fully convolutional model costs the same per input pixel, so ``compute_ratio`` = input
pixels run / field pixels is the extra compute against one untiled pass.
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from edge.device.errors import EdgeError

log = logging.getLogger(__name__)

METHODS = ("independent", "overlap-crop", "overlap-blend", "halo")

Infer = Callable[[NDArray[np.float32]], NDArray[np.float32]]
Prepare = Callable[[NDArray[Any]], NDArray[np.float32]]


class TilingError(EdgeError, ValueError):
    """A tiling cannot be planned or run (bad method, tile size, halo or model output)."""


@dataclass(frozen=True)
class AxisPlan:
    """Windows along one axis of length ``length``: ``window`` px each, starting at ``starts``.

    ``weights[i]`` (length ``window``) weighs window i's output; ``support[i]`` is the ``[lo, hi)``
    part of the window where that weight is non-zero.
    """

    length: int
    window: int
    starts: tuple[int, ...]
    weights: tuple[NDArray[np.float32], ...]
    support: tuple[tuple[int, int], ...]

    @property
    def boundaries(self) -> tuple[int, ...]:
        """Field positions inside ``(0, length)`` where a window's kept part begins or ends (seams)."""
        cuts = {s + e for s, sup in zip(self.starts, self.support, strict=True) for e in sup}
        return tuple(sorted(c for c in cuts if 0 < c < self.length))


def _stride(window: int, method: str, halo: int) -> int:
    if method == "independent":
        return window
    if method == "overlap-crop":
        return window - 2 * (window // 4)
    if method == "overlap-blend":
        return max(1, window // 4)
    if method == "halo":
        if window - 2 * halo < 1:
            raise TilingError(f"tile {window} px leaves nothing inside a halo of {halo} px; use tiles of at "
                              f"least {2 * halo + 1} px")
        return window - 2 * halo
    raise TilingError(f"unknown tiling method {method!r}; valid: {', '.join(METHODS)}")


def _voronoi(starts: list[int], window: int, length: int) -> list[NDArray[np.float32]]:
    """0/1 weights: each field pixel belongs to the window whose centre is nearest."""
    cuts = [0] + [(a + b + window) // 2 for a, b in itertools.pairwise(starts)] + [length]
    out = []
    for i, s in enumerate(starts):
        w = np.zeros(window, np.float32)
        w[cuts[i] - s:cuts[i + 1] - s] = 1.0
        out.append(w)
    return out


def _triangles(starts: list[int], window: int) -> list[NDArray[np.float32]]:
    """Triangular weights over each window's centre half; flat towards the field's edges."""
    margin = window // 4
    half = (window - 2 * margin) / 2
    k = np.arange(window, dtype=np.float64) + 0.5
    tri = np.clip(1.0 - np.abs(k - window / 2) / half, 0.0, None)
    out = []
    for i in range(len(starts)):
        w = tri.copy()
        if i == 0:
            w[k < window / 2] = 1.0
        if i == len(starts) - 1:
            w[k > window / 2] = 1.0
        out.append(w.astype(np.float32))
    return out


def plan_axis(length: int, window: int, method: str, halo: int = 0) -> AxisPlan:
    """Windows of ``window`` px along an axis of ``length`` px for ``method`` (see the module doc)."""
    if length < 1 or window < 1:
        raise TilingError(f"axis of {length} px, window of {window} px: both must be >= 1")
    stride = _stride(window, method, halo)
    starts = [0] if length <= window else [*range(0, length - window, stride), length - window]
    weights = (_triangles(starts, window) if method == "overlap-blend" and len(starts) > 1
               else _voronoi(starts, window, max(length, window)))
    support = []
    for w in weights:
        nz = np.flatnonzero(w)
        support.append((int(nz[0]), int(nz[-1]) + 1))
    return AxisPlan(length, window, tuple(starts), tuple(weights), tuple(support))


@dataclass(frozen=True)
class TilePlan:
    """Tiles over an ``(H, W)`` field: the outer product of a row and a column :class:`AxisPlan`."""

    method: str
    y: AxisPlan
    x: AxisPlan
    halo: int = 0

    @property
    def shape(self) -> tuple[int, int]:
        return (self.y.length, self.x.length)

    @property
    def tile(self) -> tuple[int, int]:
        return (self.y.window, self.x.window)

    @property
    def n_tiles(self) -> int:
        return len(self.y.starts) * len(self.x.starts)

    @property
    def compute_ratio(self) -> float:
        """Model input pixels (tiles, padding included) over field pixels: the cost against one pass."""
        return self.n_tiles * self.y.window * self.x.window / (self.y.length * self.x.length)

    def seam_mask(self, band: int = 2) -> NDArray[np.bool_]:
        """``(H, W)``: pixels within ``band`` px of a tile boundary (where seams would show)."""
        rows = np.zeros(self.y.length, bool)
        cols = np.zeros(self.x.length, bool)
        for b in self.y.boundaries:
            rows[max(0, b - band):b + band] = True
        for b in self.x.boundaries:
            cols[max(0, b - band):b + band] = True
        return rows[:, None] | cols[None, :]


def plan_tiles(shape: tuple[int, int], tile: int | tuple[int, int], method: str, halo: int = 0) -> TilePlan:
    """A :class:`TilePlan` for a field of ``shape`` (H, W) in tiles of ``tile`` px ((h, w) or square)."""
    th, tw = (tile, tile) if isinstance(tile, int) else tile
    if method == "halo" and halo < 0:
        raise TilingError(f"halo {halo} px: must be >= 0")
    return TilePlan(method, plan_axis(shape[0], th, method, halo), plan_axis(shape[1], tw, method, halo), halo)


def halo_tile(length: int, halo: int, max_tile: int) -> int:
    """The smallest window (≤ ``max_tile``) that covers ``length`` px with a halo using the fewest windows.

    With n windows of T px and a halo h, n·T − 2h·(n − 1) ≥ L; the fewest windows that fit under
    ``max_tile`` cost the least overlap.
    """
    if max_tile <= 2 * halo:
        raise TilingError(f"max tile {max_tile} px leaves nothing inside a halo of {halo} px; allow tiles of at "
                          f"least {2 * halo + 1} px")
    if length <= max_tile:
        return length
    n = math.ceil((length - 2 * halo) / (max_tile - 2 * halo))
    return math.ceil((length + 2 * halo * (n - 1)) / n)


def _window(field: NDArray[Any], y0: int, x0: int, tile: tuple[int, int],
            prepare: Prepare) -> NDArray[np.float32]:
    x = prepare(field[..., y0:y0 + tile[0], x0:x0 + tile[1]])
    pad_y, pad_x = tile[0] - x.shape[-2], tile[1] - x.shape[-1]
    if pad_y or pad_x:  # only a field smaller than the tile: mirror it out to the tile
        mode: Literal["reflect", "symmetric"] = "reflect" if min(x.shape[-2:]) >= 2 else "symmetric"
        x = np.pad(x, [(0, 0)] * (x.ndim - 2) + [(0, pad_y), (0, pad_x)], mode=mode)
    return np.ascontiguousarray(x, dtype=np.float32)


def _as_float(x: NDArray[Any]) -> NDArray[np.float32]:
    return np.asarray(x, dtype=np.float32)


def stain_field(field: NDArray[Any], infer: Infer, plan: TilePlan,
                prepare: Prepare = _as_float,
                batch: int = 1) -> NDArray[np.float32]:
    """Run ``infer`` over ``field`` ``(..., H, W)`` tile by tile; returns ``(C_out, H, W)`` float32.

    ``prepare`` turns a raw window ``(..., h, w)`` into the model input ``(C_in, h, w)`` (e.g. the
    daemon's ADU normalisation), so the whole field is never held as float32. ``infer`` takes
    ``(B, C_in, th, tw)`` batches of at most ``batch`` tiles (a :class:`edge.device.backends.Backend`'s
    ``infer`` or a :class:`edge.device.inference.ModelRunner`'s).
    """
    if field.shape[-2:] != plan.shape:
        raise TilingError(f"field is {field.shape[-2:]} px, the tile plan was made for {plan.shape}")
    if batch < 1:
        raise TilingError(f"batch {batch}: must be >= 1")
    h, w = plan.shape
    tiles = [(iy, ix) for iy in range(len(plan.y.starts)) for ix in range(len(plan.x.starts))]
    out: NDArray[np.float32] | None = None
    norm = np.zeros((h, w), np.float32)
    for k in range(0, len(tiles), batch):
        chunk = tiles[k:k + batch]
        xs = np.stack([_window(field, plan.y.starts[iy], plan.x.starts[ix], plan.tile, prepare) for iy, ix in chunk])
        ys = np.asarray(infer(xs), dtype=np.float32)
        if ys.ndim != 4 or ys.shape[0] != len(chunk) or ys.shape[2:] != plan.tile:
            raise TilingError(f"the model returned {ys.shape} for {xs.shape}; whole-field tiling needs a model "
                              "whose output has the input's height and width (fully convolutional)")
        if out is None:
            out = np.zeros((ys.shape[1], h, w), np.float32)
        for (iy, ix), y in zip(chunk, ys, strict=True):
            _accumulate(out, norm, y, plan, iy, ix)
    assert out is not None  # a plan has at least one tile
    if float(norm.min()) <= 0.0:
        raise TilingError("tile plan leaves pixels without weight (a bug in the plan)")
    out /= norm
    return out


def _accumulate(out: NDArray[np.float32], norm: NDArray[np.float32], y: NDArray[np.float32], plan: TilePlan,
                iy: int, ix: int) -> None:
    (ylo, yhi), (xlo, xhi) = plan.y.support[iy], plan.x.support[ix]
    y0, x0 = plan.y.starts[iy], plan.x.starts[ix]
    yhi, xhi = min(yhi, plan.y.length - y0), min(xhi, plan.x.length - x0)  # padding is never kept
    w2 = plan.y.weights[iy][ylo:yhi, None] * plan.x.weights[ix][None, xlo:xhi]
    out[:, y0 + ylo:y0 + yhi, x0 + xlo:x0 + xhi] += y[:, ylo:yhi, xlo:xhi] * w2
    norm[y0 + ylo:y0 + yhi, x0 + xlo:x0 + xhi] += w2


def measure_halo(infer: Infer, channels: int, size: int, probes: int = 3, seed: int = 0, tol: float = 0.0) -> int:
    """The model's receptive-field radius (px), measured with the backend itself.

    A random ``(channels, size, size)`` input and ``probes`` copies with the centre pixel changed run
    in one batch; the radius is the largest Chebyshev distance from the centre at which an output
    changes by more than ``tol``. With ``tol = 0`` this is the float32 receptive field: beyond it the
    output does not depend on the pixel at all, so a halo of this size reproduces an untiled pass.
    """
    rng = np.random.default_rng(seed)
    c = size // 2
    x = np.repeat(rng.random((1, channels, size, size), dtype=np.float32), probes + 1, axis=0)
    x[1:, :, c, c] = rng.random((probes, channels), dtype=np.float32)
    y = np.asarray(infer(x), dtype=np.float32)
    changed = (np.abs(y[1:] - y[:1]) > tol).any(axis=(0, 1))
    rows, cols = np.nonzero(changed)
    if rows.size == 0:
        raise TilingError("changing an input pixel changed no output; is the model constant?")
    radius = int(max(np.abs(rows - c).max(), np.abs(cols - c).max()))
    if radius >= c - 1:
        raise TilingError(f"the receptive field reaches the {size} px probe's edge (radius >= {radius}); "
                          "probe with a larger window")
    return radius


__all__ = ["METHODS", "AxisPlan", "TilePlan", "TilingError", "halo_tile", "measure_halo", "plan_axis",
           "plan_tiles", "stain_field"]
