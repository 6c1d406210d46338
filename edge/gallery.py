"""The ``watch`` tool's core: collect arriving cells, draw a gallery, keep rate and latency."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray

from edge.client import StainedCell
from edge.metrics import percentile


def gallery(cells: list[StainedCell], columns: int = 8, scale: int = 2) -> NDArray[np.uint8]:
    """An RGB image ``(H, W, 3)``: per cell, the virtual stain beside the unstained brightfield."""
    if not cells:
        return np.full((64, 64, 3), 255, np.uint8)
    p = cells[0].stained.shape[0]
    tiles = []
    for c in cells:
        ok = c.unstained is not None and c.unstained.shape == c.stained.shape
        bf = c.unstained if ok and c.unstained is not None else np.zeros_like(c.stained)
        tile = np.concatenate([c.stained, bf], axis=1)
        if c.stained.shape[0] != p:
            tile = cv2.resize(tile, (2 * p, p))
        if "suspect" in c.header.get("flags", []):
            tile = tile.copy()
            tile[:2], tile[-2:], tile[:, :2], tile[:, -2:] = (255, 0, 0), (255, 0, 0), (255, 0, 0), (255, 0, 0)
        tiles.append(np.pad(tile, ((2, 2), (2, 2), (0, 0)), constant_values=255))
    rows = []
    for i in range(0, len(tiles), columns):
        row = tiles[i:i + columns]
        row += [np.full_like(tiles[0], 255)] * (columns - len(row))
        rows.append(np.concatenate(row, axis=1))
    img = np.concatenate(rows, axis=0)
    if scale > 1:
        img = cv2.resize(img, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
    return np.asarray(img, np.uint8)


def save_rgb(path: Path, rgb: NDArray[np.uint8]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)):
        raise OSError(f"cannot write {path}")


@dataclass
class WatchStats:
    """Arrival rate and latency (capture end → received, ms) of cells."""

    t0: float = field(default_factory=time.time)
    cells: int = 0
    latencies_ms: list[float] = field(default_factory=list)

    def add(self, cell: StainedCell) -> None:
        self.cells += 1
        t_end = cell.header.get("t", {}).get("capture_end")
        if isinstance(t_end, float):
            self.latencies_ms.append((time.time() - t_end) * 1e3)

    def to_dict(self) -> dict[str, float]:
        dt = max(time.time() - self.t0, 1e-9)
        lat = self.latencies_ms
        return {"cells": self.cells, "cells_per_s": round(self.cells / dt, 3),
                "latency_p50_ms": round(percentile(lat, 50), 1) if lat else float("nan"),
                "latency_p99_ms": round(percentile(lat, 99), 1) if lat else float("nan")}
