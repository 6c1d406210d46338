"""Coarse registration of a stained re-scan onto its unstained brightfield field (seed 000, 3.1.3).

Both images become binary Canny edge maps (the stain changes colours and contrast, edges stay
where the cells are), slightly blurred. The stained map, cropped by ``margin_px`` on every side,
slides over the unstained one; the normalised correlation coefficient (OpenCV ``TM_CCOEFF_NORMED``,
seed A.1.2) peaks at the shift, refined to subpixel by a parabola through the peak. The seed
stopped there; a re-scan is also slightly rotated and scaled, so ECC (enhanced correlation
coefficient, Evangelidis & Psarakis 2008) then refines a translation or a full affine map on the
same edge maps, starting from the NCC shift.

Coordinates: pixel centres at integers, x = column, y = row. :attr:`Registration.matrix` maps
unstained pixels to stained pixels: ``[xs, ys] = M @ [xu, yu, 1]``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray

from trainer.data.config import RegistrationConfig

log = logging.getLogger(__name__)


class RegistrationError(ValueError):
    """A field cannot be registered; the message says why (it is counted as the reject reason)."""


@dataclass(frozen=True)
class Registration:
    """Unstained → stained pixel map and its quality."""

    matrix: NDArray[np.float64]  # (2, 3)
    score: float  # NCC of the edge maps at the coarse peak
    ecc: float  # ECC correlation after refinement (nan when not refined)

    def to_stained(self, xy: NDArray[np.floating]) -> NDArray[np.float64]:
        """Unstained pixel coordinates ``(N, 2)`` [x, y] → stained pixel coordinates."""
        p = np.asarray(xy, np.float64).reshape(-1, 2)
        return p @ self.matrix[:, :2].T + self.matrix[:, 2]

    def to_unstained(self, xy: NDArray[np.floating]) -> NDArray[np.float64]:
        """Stained pixel coordinates ``(N, 2)`` → unstained pixel coordinates."""
        inv = cv2.invertAffineTransform(self.matrix)
        p = np.asarray(xy, np.float64).reshape(-1, 2)
        return p @ inv[:, :2].T + inv[:, 2]


def grey(rgb: NDArray[np.integer] | NDArray[np.floating], black_level: float = 0.0) -> NDArray[np.float32]:
    """Mean of the channels of ``(C, H, W)``, black level removed, background (80th pct.) at 1."""
    g = np.asarray(rgb, np.float32).mean(axis=0) - np.float32(black_level)
    return (g / max(float(np.percentile(g, 80)), 1e-6)).astype(np.float32)


def edge_map(image: NDArray[np.float32], cfg: RegistrationConfig) -> NDArray[np.float32]:
    """Blurred binary Canny edges ``(H, W)`` float32 of a grey image normalised by :func:`grey`."""
    img8 = np.clip(image * 200.0, 0, 255).astype(np.uint8)
    edges = cv2.Canny(img8, cfg.canny_low, cfg.canny_high).astype(np.float32) / 255.0
    if cfg.edge_blur_px > 0:
        edges = cv2.GaussianBlur(edges, (0, 0), cfg.edge_blur_px)
    return edges


def _parabola(c_minus: float, c0: float, c_plus: float) -> float:
    """Subpixel offset in [-0.5, 0.5] of a peak through three samples."""
    denom = c_minus - 2.0 * c0 + c_plus
    return 0.0 if denom >= 0 else float(np.clip(0.5 * (c_minus - c_plus) / denom, -0.5, 0.5))


def ncc_peak(result: NDArray[np.float32]) -> tuple[float, float, float]:
    """Location (x, y) with subpixel refinement, and value, of the maximum of a score map."""
    _, best, _, (px, py) = cv2.minMaxLoc(result)
    h, w = result.shape
    dx = _parabola(result[py, px - 1], best, result[py, px + 1]) if 0 < px < w - 1 else 0.0
    dy = _parabola(result[py - 1, px], best, result[py + 1, px]) if 0 < py < h - 1 else 0.0
    return px + dx, py + dy, float(best)


def coarse_shift(stained_edges: NDArray[np.float32], unstained_edges: NDArray[np.float32],
                 margin_px: int) -> tuple[float, float, float]:
    """Shift (tx, ty) with unstained = stained + t, and the NCC score, by template matching."""
    h, w = stained_edges.shape
    if unstained_edges.shape != (h, w):
        raise RegistrationError(f"stained image is {w}x{h} px, unstained {unstained_edges.shape[1]}x"
                                f"{unstained_edges.shape[0]}: a re-scan must have the field's size")
    if 2 * margin_px + 16 > min(h, w):
        raise RegistrationError(f"registration.margin_px {margin_px} leaves no template in a {w}x{h} field; "
                                f"use at most {(min(h, w) - 16) // 2}")
    template = stained_edges[margin_px:h - margin_px, margin_px:w - margin_px]
    if float(template.std()) == 0.0 or float(unstained_edges.std()) == 0.0:
        raise RegistrationError("no edges in the stained or unstained image (blank or out of focus)")
    result = np.asarray(cv2.matchTemplate(unstained_edges, template, cv2.TM_CCOEFF_NORMED), np.float32)
    px, py, score = ncc_peak(result)
    return px - margin_px, py - margin_px, score


def register(stained_rgb: NDArray[np.integer], unstained_rgb: NDArray[np.integer], cfg: RegistrationConfig,
             stained_black: float = 0.0, unstained_black: float = 0.0) -> Registration:
    """Register a stained frame ``(3, H, W)`` onto the unstained brightfield frame ``(3, H, W)``.

    Raises :class:`RegistrationError` when the images do not fit or the score is below
    ``cfg.min_score``.
    """
    es = edge_map(grey(stained_rgb, stained_black), cfg)
    eu = edge_map(grey(unstained_rgb, unstained_black), cfg)
    tx, ty, score = coarse_shift(es, eu, cfg.margin_px)
    if score < cfg.min_score:
        raise RegistrationError(f"edge correlation {score:.3f} below registration.min_score {cfg.min_score}: "
                                "the stained image does not show this field")
    # ECC's warp maps template (unstained) coordinates into the input (stained) image.
    warp = np.array([[1.0, 0.0, -tx], [0.0, 1.0, -ty]], np.float32)
    ecc = float("nan")
    if cfg.refine != "none":
        mode = cv2.MOTION_TRANSLATION if cfg.refine == "translation" else cv2.MOTION_AFFINE
        criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 100, 1e-5)
        try:
            ecc, found = cv2.findTransformECC(eu, es, warp, mode, criteria, None, 1)  # type: ignore[call-overload]
            warp = np.asarray(found, np.float32)
        except cv2.error as exc:  # ECC did not converge: keep the NCC shift, say so
            log.warning("ECC refinement failed (%s); keeping the coarse shift", str(exc).strip().splitlines()[-1])
    matrix = warp.astype(np.float64)
    if np.hypot(matrix[0, 2] + tx, matrix[1, 2] + ty) > 0.5 * cfg.margin_px:
        log.warning("ECC moved the shift by more than half the margin; keeping the coarse shift")
        matrix = np.array([[1.0, 0.0, -tx], [0.0, 1.0, -ty]])
    return Registration(matrix, score, ecc)
