"""Stained cells as the client receives them, for the client-side tests."""

from __future__ import annotations

import numpy as np

from edge.client import StainedCell

P = 16


def cell(seed: int, *, truth: bool = True, darkfield: bool = True, kind: str | None = "lymphocyte") -> StainedCell:
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 256, (P, P, 3), dtype=np.uint8)
    extra = {}
    if darkfield:
        extra["darkfield"] = np.zeros((P, P, 3), np.uint8)
    if truth:
        extra["truth"] = img.copy()
    return StainedCell({"cell_id": f"s/1/0/{seed}", "seq": seed, "truth_type": kind, "flags": []}, img,
                       np.full((P, P, 3), 200, np.uint8), extra)
