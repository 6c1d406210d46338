"""Simulated raw scans and stained frames for the dataset-build tests, made once per process."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from sim.scan import ScanConfig, scan
from trainer.data.synthetic import render_stained_field


@functools.cache
def make_small_scan(base: Path) -> Path:
    """Two 192x192 fields, recipe le18 (14 images), stained + 100x, many white cells, under ``base``."""
    out = base / "scan" / "slide-a"
    scan(ScanConfig(fields=2, seed=3, field_size_px=(192, 192), recipe="le18", stained=True, hr=True,
                    pls_misalignment_rate=0.0, smear={"wbc_per_mm2": 1500.0}), out)
    return out


@functools.cache
def make_stained_frames() -> list[tuple[str, NDArray[np.uint16], list[dict[str, Any]]]]:
    """Stained 256x256 frames of both stain styles with strong lab variation, and their white cells."""
    frames = []
    for style in ("mgg", "wright-giemsa"):
        for seed in (201, 202):
            rgb, cells = render_stained_field(256, seed, style, 0.3, {"wbc_per_mm2": 1500.0})
            frames.append((style, rgb, cells))
    return frames
