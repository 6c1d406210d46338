"""The ``watch`` tool's gallery: one tile of panels per arriving cell.

A gallery tile shows one cell as panels side by side, in this order and only those that arrived:
the unstained brightfield, one darkfield image (``[crops] send_darkfield``), the virtual stain, its
named stain styles (``stained:<style>``, labelled by style) and,
on the virtual bench (``[virtual_bench] send_truth``), the simulator's stained ground truth. A header
row names the panels; a caption gives the true cell type and the SSIM of stain vs truth when known.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

from core.measures import ssim
from edge.client import StainedCell

#: panel name → header label, in tile order
PANELS: dict[str, str] = {"unstained": "brightfield", "darkfield": "darkfield", "stained": "virtual stain",
                          "truth": "true stain"}
_FONT = cv2.FONT_HERSHEY_SIMPLEX
_TEXT_PX = 16  # header and caption strip height (px, after scaling)
_WHITE, _RED, _INK = (255, 255, 255), (220, 0, 0), (40, 40, 40)


def stain_ssim(cell: StainedCell) -> float | None:
    """Grey-level SSIM (σ = 1.5 px) of the virtual stain vs the true stain, or None without truth."""
    t = cell.truth
    if t is None or t.shape != cell.stained.shape:
        return None
    return ssim(_grey(cell.stained), _grey(t), crop=False)


def _grey(rgb: NDArray[Any]) -> NDArray[np.float32]:
    return np.asarray(np.asarray(rgb, np.float32).mean(axis=-1) / np.float32(255.0), np.float32)


def panel_names(cells: list[StainedCell]) -> list[str]:
    """The panels any of ``cells`` carries, in :data:`PANELS` order (``stained`` always), the named
    stains ``stained:<style>`` right after ``stained``."""
    have = {"stained"}
    for c in cells:
        have |= {"unstained"} if c.unstained is not None else set()
        have |= set(c.extra) & set(PANELS)
    names = [p for p in PANELS if p in have]
    at = names.index("stained") + 1
    return names[:at] + sorted({k for c in cells for k in c.extra if k.startswith("stained:")}) + names[at:]


def gallery(cells: list[StainedCell], columns: int = 0, scale: int = 2) -> NDArray[np.uint8]:
    """An RGB image ``(H, W, 3)``: a header row, then one tile per cell, ``columns`` tiles per row
    (0 = about 16 panels per row). Suspect cells get a red frame; missing panels are grey."""
    if not cells:
        return np.full((64, 64, 3), 255, np.uint8)
    names = panel_names(cells)
    columns = columns or max(1, 16 // len(names))
    p = cells[0].stained.shape[0]
    captions = any(c.truth is not None or "truth_type" in c.header for c in cells)
    tiles = [_tile(c, names, p, scale, captions) for c in cells]
    rows = []
    for i in range(0, len(tiles), columns):
        row = tiles[i:i + columns]
        row += [np.full_like(tiles[0], 255)] * (columns - len(row))
        rows.append(np.concatenate(row, axis=1))
    grid = np.concatenate(rows, axis=0)
    header = _header(names, p * scale, tiles[0].shape[1], columns)
    return np.ascontiguousarray(np.concatenate([header, grid], axis=0), np.uint8)


def _tile(cell: StainedCell, names: list[str], p: int, scale: int, caption: bool) -> NDArray[np.uint8]:
    panels = []
    for name in names:
        img = cell.stained if name == "stained" else cell.unstained if name == "unstained" else cell.extra.get(name)
        if img is None or img.ndim != 3 or img.shape[-1] != 3:
            img = np.full((p, p, 3), 160, np.uint8)
        elif img.shape[:2] != (p, p):
            img = cv2.resize(np.ascontiguousarray(img), (p, p))
        panels.append(img)
    tile = np.concatenate(panels, axis=1)
    if scale > 1:
        tile = cv2.resize(tile, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
    if "suspect" in cell.header.get("flags", []):
        tile = tile.copy()
        tile[:3], tile[-3:], tile[:, :3], tile[:, -3:] = _RED, _RED, _RED, _RED
    if caption:
        strip = np.full((_TEXT_PX, tile.shape[1], 3), 255, np.uint8)
        s = stain_ssim(cell)
        text = f"{cell.header.get('truth_type') or 'no true cell'}" + (f"  SSIM {s:.2f}" if s is not None else "")
        cv2.putText(strip, text, (2, _TEXT_PX - 4), _FONT, 0.38, _INK, 1, cv2.LINE_AA)
        tile = np.concatenate([tile, strip], axis=0)
    return np.pad(tile, ((2, 2), (2, 2), (0, 0)), constant_values=255)


def _header(names: list[str], panel_px: int, tile_px: int, columns: int) -> NDArray[np.uint8]:
    strip = np.full((_TEXT_PX + 2, tile_px * columns, 3), 255, np.uint8)
    for col in range(columns):
        for k, name in enumerate(names):
            label = PANELS.get(name) or name.split(":", 1)[1]
            (w, _), _ = cv2.getTextSize(label, _FONT, 0.4, 1)
            x = col * tile_px + 2 + k * panel_px + max(0, (panel_px - w) // 2)
            cv2.putText(strip, label, (x, _TEXT_PX - 2), _FONT, 0.4, _INK, 1, cv2.LINE_AA)
    return strip


def save_rgb(path: Path, rgb: NDArray[np.uint8]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)):
        raise OSError(f"cannot write {path}")
