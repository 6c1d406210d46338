"""Fixtures of the style tests: two small folders of unpaired "cells" in two stain looks."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

#: background, cytoplasm and nucleus colours of the two looks (linear RGB in [0, 1]); B is bluer
LOOKS = {"a": ((0.92, 0.86, 0.9), (0.8, 0.62, 0.78), (0.42, 0.2, 0.5)),
         "b": ((0.9, 0.88, 0.93), (0.66, 0.62, 0.82), (0.3, 0.22, 0.55))}


def cell_image(look: str, rng: np.random.Generator, size: int = 32) -> np.ndarray:
    """``(3, size, size)`` float32: a round cell with an off-centre nucleus, in ``look``'s colours."""
    bg, cyto, nuc = (np.array(c, np.float32)[:, None, None] for c in LOOKS[look])
    yy, xx = np.mgrid[:size, :size]
    c = size / 2 + rng.uniform(-2, 2, 2)
    cell = (yy - c[0]) ** 2 + (xx - c[1]) ** 2 < (size * 0.38) ** 2
    n = c + rng.uniform(-3, 3, 2)
    nucleus = (yy - n[0]) ** 2 + (xx - n[1]) ** 2 < (size * rng.uniform(0.15, 0.22)) ** 2
    img = np.where(nucleus, nuc, np.where(cell, cyto, bg)).astype(np.float32)
    return np.clip(img + rng.normal(0, 0.01, img.shape).astype(np.float32), 0, 1)


def write_png(path: Path, img: np.ndarray) -> None:
    bgr = np.rint(np.moveaxis(img, 0, -1)[..., ::-1] * 255).astype(np.uint8)
    assert cv2.imwrite(str(path), bgr)


@pytest.fixture
def style_folders(tmp_path: Path) -> tuple[Path, Path]:
    """``(A, B)``: 8 PNG cells each, different random cells in each folder."""
    rng = np.random.default_rng(0)
    out = []
    for look in ("a", "b"):
        folder = tmp_path / look
        folder.mkdir()
        for i in range(8):
            write_png(folder / f"{look}_{i}.png", cell_image(look, rng))
        out.append(folder)
    return out[0], out[1]
