"""Cell crops in the recipe's channel order, normalised as the model bundle says (pure functions).

A crop is ``P × P`` pixels centred on the detection (``x0 = round(cx) − P // 2``). Cells near the
field border are **padded and flagged** (``border=True``), never dropped: the part of the crop
outside the field is filled by ``mode`` — ``reflect`` (mirror without repeating the edge pixel),
``edge`` (repeat it) or ``constant`` (the camera's black level, i.e. no light).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
from numpy.typing import NDArray

A = TypeVar("A", bound=np.generic)


@dataclass(frozen=True)
class Normalisation:
    """``x = clip((raw − offset) / scale, 0, 1)`` per plane; ``offset``/``scale`` are ``(N,)`` arrays
    broadcast over colours and pixels (a scalar in the manifest becomes a constant array)."""

    offset: NDArray[np.float32]
    scale: NDArray[np.float32]

    @classmethod
    def uniform(cls, planes: int, offset: float, scale: float) -> Normalisation:
        return cls(np.full(planes, offset, np.float32), np.full(planes, scale, np.float32))

    def per_channel(self, channels: int) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
        """``(offset, scale)`` per model input channel ``(channels,)``: each plane's value for its colours
        (plane-major, as :func:`normalise` lays the planes out)."""
        planes = len(self.offset)
        if channels % planes:
            raise ValueError(f"{channels} input channels are not a whole number of colours for {planes} planes")
        return np.repeat(self.offset, channels // planes), np.repeat(self.scale, channels // planes)


def crop_window(center_px: tuple[float, float], size: int) -> tuple[int, int]:
    """Top-left corner (x0, y0) of the ``size``-pixel crop centred on ``center_px`` (x, y)."""
    return (round(center_px[0]) - size // 2, round(center_px[1]) - size // 2)


def crop(pixels: NDArray[A], center_px: tuple[float, float], size: int, mode: str = "reflect",
         fill: float = 0.0, view: bool = False) -> tuple[NDArray[A], bool]:
    """A ``(..., size, size)`` crop of ``pixels`` ``(..., H, W)`` and whether it needed padding.

    ``view``: a crop that needs no padding is a strided view of ``pixels`` instead of a copy."""
    h, w = pixels.shape[-2:]
    x0, y0 = crop_window(center_px, size)
    x1, y1 = x0 + size, y0 + size
    cx0, cy0, cx1, cy1 = max(0, x0), max(0, y0), min(w, x1), min(h, y1)
    if cx0 >= cx1 or cy0 >= cy1:
        raise ValueError(f"crop centred at {center_px} lies entirely outside the {w}x{h} field")
    sub = pixels[..., cy0:cy1, cx0:cx1]
    pads = (cy0 - y0, y1 - cy1, cx0 - x0, x1 - cx1)
    if not any(pads):
        return (sub if view else np.ascontiguousarray(sub)), False
    if mode not in ("reflect", "edge", "constant"):
        raise ValueError(f"border mode {mode!r} is not one of reflect, edge, constant")
    return _pad(sub, pads, mode, fill), True


def _pad(sub: NDArray[A], pads: tuple[int, int, int, int], mode: str, fill: float) -> NDArray[A]:
    """``np.pad`` of the last two axes of ``sub`` by ``pads`` (top, bottom, left, right), as :func:`crop` pads:
    the same values, written by slice copies into one new array (numpy's own pad makes more passes over the
    ~1 MB crop: ~2x the time). Reflections wider than the crop (a cell on the very edge) go to ``np.pad``."""
    t, b, left, right = pads
    h, w = sub.shape[-2:]
    if mode == "reflect" and (max(t, b) >= h or max(left, right) >= w):
        return _np_pad(sub, pads, mode, fill)
    out = np.empty((*sub.shape[:-2], t + h + b, left + w + right), sub.dtype)
    out[..., t:t + h, left:left + w] = sub
    rows, cols = slice(t, t + h), slice(left, left + w)
    if mode == "constant":
        value = np.asarray(fill).astype(sub.dtype)
        out[..., :t, :] = value
        out[..., t + h:, :] = value
        out[..., rows, :left] = value
        out[..., rows, left + w:] = value
    elif mode == "edge":  # rows first (inner columns), then columns over the whole height, as numpy does
        out[..., :t, cols] = out[..., t:t + 1, cols]
        out[..., t + h:, cols] = out[..., t + h - 1:t + h, cols]
        out[..., :, :left] = out[..., :, left:left + 1]
        out[..., :, left + w:] = out[..., :, left + w - 1:left + w]
    else:  # reflect without repeating the edge pixel: row t - k is row t + k, row t + h - 1 + k is t + h - 1 - k
        out[..., :t, cols] = out[..., _back(2 * t, t), cols]
        out[..., t + h:, cols] = out[..., _back(t + h - 2, b), cols]
        out[..., :, :left] = out[..., :, _back(2 * left, left)]
        out[..., :, left + w:] = out[..., :, _back(left + w - 2, right)]
    return out


def _back(start: int, n: int) -> slice:
    """The ``n`` indices ``start, start - 1, ..., start - n + 1`` (all >= 0) as a slice."""
    return slice(start, start - n if start - n >= 0 else None, -1)


def _np_pad(sub: NDArray[A], pads: tuple[int, int, int, int], mode: str, fill: float) -> NDArray[A]:
    width = [(0, 0)] * (sub.ndim - 2) + [(pads[0], pads[1]), (pads[2], pads[3])]
    if mode == "constant":
        out = np.pad(sub, width, mode="constant", constant_values=np.asarray(fill).astype(sub.dtype))
    elif mode == "edge":
        out = np.pad(sub, width, mode="edge")
    else:
        out = np.pad(sub, width, mode="symmetric" if min(sub.shape[-2:]) < 2 else "reflect")
    return out


def normalise(patch: NDArray[np.uint16], norm: Normalisation,
              out: NDArray[np.float32] | None = None) -> NDArray[np.float32]:
    """``(N, C, P, P)`` raw ADU → ``(N·C, P, P)`` float32 in [0, 1], plane-major (``plane * C + colour``)
    (converted and offset in one pass); written into ``out`` (a C-contiguous ``(N·C, P, P)`` float32,
    e.g. a row of a batch buffer) when given."""
    n, c, p, q = patch.shape
    if out is not None and (out.shape != (n * c, p, q) or out.dtype != np.float32 or not out.flags.c_contiguous):
        raise ValueError(f"normalise: out must be a C-contiguous float32 {(n * c, p, q)}, found {out.dtype} "
                         f"{out.shape}")
    x = np.empty((n, c, p, q), np.float32) if out is None else out.reshape(n, c, p, q)
    np.subtract(patch, norm.offset[:, None, None, None], out=x, dtype=np.float32)
    x *= (1.0 / norm.scale)[:, None, None, None]
    np.clip(x, 0.0, 1.0, out=x)
    return x.reshape(n * c, p, q)


def normalise_batch(raw: NDArray[np.uint16], norm: Normalisation) -> NDArray[np.float32]:
    """:func:`normalise` of every row of a batch of camera counts ``(B, N·C, P, P)`` → float32 ``(B, N·C, P, P)``."""
    b, channels, p, q = raw.shape
    planes = len(norm.offset)
    if channels % planes:
        raise ValueError(f"normalise_batch: {channels} channels are not a whole number of colours for {planes} planes")
    out = np.empty(raw.shape, np.float32)
    for k in range(b):
        normalise(raw[k].reshape(planes, channels // planes, p, q), norm, out[k])
    return out


def percentile(x: NDArray[np.integer[Any]] | NDArray[np.floating[Any]], q: float) -> float:
    """``float(np.percentile(x, q))`` (linear interpolation), bit for bit; for 8- and 16-bit camera counts
    the two order statistics come from a histogram (linear time) instead of a partition."""
    if x.dtype.kind != "u" or x.itemsize > 2 or x.size == 0:
        return float(np.percentile(x, q))
    n = x.size
    virtual = (n - 1) * np.true_divide(q, 100)
    lo = float(np.floor(virtual))
    gamma = virtual - lo
    cum = np.cumsum(np.bincount(x.ravel()))
    a, b = (x.dtype.type(np.searchsorted(cum, k, side="right")) for k in (int(lo), min(int(lo) + 1, n - 1)))
    diff = np.subtract(b, a)  # numpy's own lerp, in its order of operations
    return float(np.subtract(b, diff * (1 - gamma)) if gamma >= 0.5 else np.add(a, diff * gamma))


def to_rgb8(patch: NDArray[np.uint16], black: float, white: float) -> NDArray[np.uint8]:
    """A ``(C, P, P)`` raw patch as 8-bit ``(C, P, P)`` for display (linear from ``black`` to ``white``)."""
    x = (patch.astype(np.float32) - np.float32(black)) * np.float32(255.0 / max(white - black, 1e-6))
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def to_rgb8_hwc(patch: NDArray[np.uint16], black: float, white: float) -> NDArray[np.uint8]:
    """:func:`to_rgb8` as ``(P, P, C)`` (the wire's layout)."""
    return np.ascontiguousarray(np.moveaxis(to_rgb8(patch, black, white), 0, -1))
