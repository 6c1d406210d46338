"""Drawn smear photographs: pink red-cell discs and purple white-cell nuclei on tinted, vignetted glass.

Crude on purpose: known geometry for the scale estimator, flat field and stain finder, without
the simulator's cost. Coordinates in pixels; the photograph is 8-bit sRGB ``(3, H, W)``.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray


def drawn_smear(h: int = 300, w: int = 400, rbc_px: float = 20.0, n_rbc: int = 80,
                wbcs: tuple[tuple[int, int], ...] = ((120, 150), (300, 200)), seed: int = 0,
                tint: tuple[float, float, float] = (1.0, 0.95, 0.9), field_stop: bool = False) -> NDArray[np.uint8]:
    """An 8-bit sRGB photograph ``(3, h, w)``; white cells (nucleus ~ red-cell size) at ``wbcs`` (x, y)."""
    rng = np.random.default_rng(seed)
    od = np.zeros((h, w, 3), np.float32)
    rbc = np.array([0.05, 0.35, 0.2], np.float32)  # eosin-like: absorbs green most
    nuc = np.array([0.7, 0.8, 0.3], np.float32)  # azure-like: red and green
    placed: list[tuple[float, float]] = [(x, y) for x, y in wbcs]
    tries = 0
    while len(placed) < n_rbc + len(wbcs) and tries < 20000:
        tries += 1
        x, y = rng.uniform(rbc_px, w - rbc_px), rng.uniform(rbc_px, h - rbc_px)
        if all((x - a) ** 2 + (y - b) ** 2 > (1.15 * rbc_px) ** 2 for a, b in placed):
            placed.append((x, y))
            disc = np.zeros((h, w), np.float32)
            cv2.circle(disc, (int(x), int(y)), int(rbc_px / 2), 1.0, -1)
            cv2.circle(disc, (int(x), int(y)), int(rbc_px / 5), 0.6, -1)  # pale centre
            od += disc[..., None] * rbc
    for x, y in wbcs:
        cyto = np.zeros((h, w), np.float32)
        cv2.circle(cyto, (x, y), int(0.75 * rbc_px), 1.0, -1)
        od += cyto[..., None] * np.array([0.1, 0.12, 0.05], np.float32)
        for dx, dy in ((-0.2, -0.1), (0.2, 0.05), (0.0, 0.2)):  # a lobed nucleus
            lobe = np.zeros((h, w), np.float32)
            cv2.circle(lobe, (int(x + dx * rbc_px), int(y + dy * rbc_px)), int(0.3 * rbc_px), 1.0, -1)
            od = np.maximum(od, lobe[..., None] * nuc)
    od = cv2.GaussianBlur(od, (0, 0), 1.0)
    yy, xx = np.mgrid[0:h, 0:w]
    r2 = ((xx - w / 2) ** 2 + (yy - h / 2) ** 2) / (0.5 * max(h, w)) ** 2
    light = (0.85 * (1 - 0.3 * r2))[..., None] * np.array(tint, np.float32)
    lin = light * 10.0 ** (-od)
    if field_stop:
        lin[r2 > 0.95] = 0.005
    lin = np.clip(lin + rng.normal(0, 0.004, lin.shape), 0, 1)
    srgb = np.where(lin <= 0.0031308, 12.92 * lin, 1.055 * lin ** (1 / 2.4) - 0.055)
    return np.moveaxis(np.round(srgb * 255).astype(np.uint8), -1, 0)


def drawn_folder(root: Path, n: int = 3) -> Path:
    """A labelled folder of ``n`` drawn smears (``images/sK.png``, 400x300 px) with their two white cells
    (nuclei ~40 px) as YOLO boxes (``labels/sK.txt``)."""
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    for k in range(n):
        cv2.imwrite(str(root / "images" / f"s{k}.png"), np.moveaxis(drawn_smear(seed=k), 0, -1)[..., ::-1])
        (root / "labels" / f"s{k}.txt").write_text("0 0.3 0.5 0.1 0.133\n0 0.75 0.667 0.1 0.133\n")
    return root
