"""The 100x ground truth: match a high-resolution tile to the stained 20x image and resample it
onto the 20x crop grid (seed 000, 3.1.3, plus the scale refinement it skipped).

Correlating raw intensities failed in the seed: the 20x image has dark diffraction rims around
red cells that the 100x image lacks. Both images are therefore LoG-preprocessed (grey minus the
Laplacian (7x7) of a Gaussian (9x9) blur), which keeps edges and textures and removes the
low-frequency differences. The 20x stained window is upsampled to the 100x pixel size and the tile,
rescaled by each candidate relative scale (the true magnification ratio is never exactly the
nominal one), is matched by normalised correlation. The best (scale, position) maps the tile onto
the 20x grid, where it is box-filtered by the ratio and resampled: a target with the 20x geometry
and the 100x optics.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray

from trainer.data.align import warp_window
from trainer.data.config import HrConfig
from trainer.data.registration import grey, ncc_peak


def log_preprocess(image: NDArray[np.float32], cfg: HrConfig) -> NDArray[np.float32]:
    """``image − Laplacian(GaussianBlur(image))`` of a grey image ``(H, W)``."""
    blur = np.asarray(cv2.GaussianBlur(image, (cfg.gaussian_ksize, cfg.gaussian_ksize), 0), np.float32)
    return np.asarray(image - cv2.Laplacian(blur, cv2.CV_32F, ksize=cfg.laplacian_ksize), np.float32)


@dataclass(frozen=True)
class HrMatch:
    """Where a tile sits on the unstained 20x grid: tile pixel t ↔ 20x pixel ``origin + (t+0.5)·step − 0.5``."""

    origin_x: float
    origin_y: float
    step: float  # 20x pixels per tile pixel (nominal hr_pixel / pixel, times the refined scale)
    scale: float  # refined relative scale (1 = nominal magnification ratio)
    score: float  # NCC of the LoG images


def match_tile(tile: NDArray[np.uint16], stained: NDArray[np.uint16], matrix: NDArray[np.float64],
               centre_xy: tuple[float, float], ratio: float, cfg: HrConfig, pixel_size_um: float,
               tile_black: float = 0.0, stained_black: float = 0.0) -> HrMatch:
    """Match ``tile`` ``(C, h, w)`` (100x) expected at unstained px ``centre_xy`` against the stained
    frame resampled through ``matrix`` (unstained → stained); ``ratio`` = 20x px / 100x px."""
    h, w = tile.shape[-2:]
    search = int(np.ceil(cfg.search_um / pixel_size_um))
    half = int(np.ceil(max(h, w) / ratio / 2 * max(cfg.scales))) + search
    wx0, wy0 = round(centre_xy[0]) - half, round(centre_xy[1]) - half
    window = grey(warp_window(stained, matrix, wx0, wy0, 2 * half), stained_black)
    up = np.asarray(cv2.resize(window, None, fx=ratio, fy=ratio, interpolation=cv2.INTER_LINEAR), np.float32)
    up_log = log_preprocess(up, cfg)
    tile_grey = grey(tile, tile_black)
    best = (-2.0, 1.0, 0.0, 0.0)
    for s in sorted(cfg.scales, key=lambda v: abs(v - 1.0)):
        t = np.asarray(cv2.resize(tile_grey, (max(8, round(w * s)), max(8, round(h * s))),
                                  interpolation=cv2.INTER_AREA), np.float32)
        res = np.asarray(cv2.matchTemplate(up_log, log_preprocess(t, cfg), cv2.TM_CCOEFF_NORMED), np.float32)
        px, py, score = ncc_peak(res)
        # Another scale must beat the nominal one clearly: LoG correlations of different optics are flat.
        margin = 0.0 if s == 1.0 or best[1] != 1.0 else cfg.scale_min_gain
        if score > best[0] + margin:
            best = (score, s, px, py)
    score, s, px, py = best
    # resized-tile px i = (t+0.5)·q − 0.5 (q = round(w·s)/w); upsampled u = px + i; 20x X = wx0 + (u+0.5)/ratio − 0.5
    q = round(w * s) / w
    return HrMatch(wx0 + px / ratio, wy0 + py / ratio, q / ratio, s, float(score))


def resample_tile(tile: NDArray[np.uint16], match: HrMatch, x0: int, y0: int, size: int) -> tuple[
        NDArray[np.uint16], float]:
    """The tile on the 20x crop grid ``(C, size, size)`` with top-left ``(x0, y0)``, box-filtered by
    the ratio, and the fraction of the crop the tile covers (the rest repeats its border)."""
    k = 1.0 / match.step  # tile pixels per 20x pixel
    box = max(1, round(k) | 1)
    img = cv2.blur(np.ascontiguousarray(np.moveaxis(tile, 0, -1)).astype(np.float32), (box, box))
    # 20x px X → tile px t = (X − origin + 0.5)·k − 0.5, with X = x0 + X'
    m = np.array([[k, 0.0, (x0 - match.origin_x + 0.5) * k - 0.5],
                  [0.0, k, (y0 - match.origin_y + 0.5) * k - 0.5]])
    out = cv2.warpAffine(img, m, (size, size), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                         borderMode=cv2.BORDER_REPLICATE)
    h, w = tile.shape[-2:]
    xs = np.arange(size) * k + m[0, 2]
    ys = np.arange(size) * k + m[1, 2]
    cover = float(np.mean((xs >= 0) & (xs <= w - 1))) * float(np.mean((ys >= 0) & (ys <= h - 1)))
    arr = np.rint(np.moveaxis(out.reshape(size, size, -1), -1, 0))
    return np.clip(arr, 0, 65535).astype(np.uint16), cover
