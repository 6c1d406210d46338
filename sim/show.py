"""Contact sheets of a simulated (or real) field, for a person to look at.

Top row: whole-field panels (brightfield, an oblique brightfield LED, a darkfield LED at low and
high exposure, the stained re-scan). Bottom row: the same panels zoomed on one white cell, plus the
100x tile of that cell when the scan has one. Darkfield panels are shown stretched (the factor is
printed on the panel) and unstained panels are white-balanced on the brightfield background (raw
RGB from the sensor is greenish); nothing else is altered.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

from core.rawscan import RawImage, read_image

PANEL = 320
ZOOM_UM = 24.0


def _to_rgb8(planes: NDArray[np.uint16], meta: dict[str, Any], stretch: float = 1.0,
             balance: NDArray[np.float32] | None = None) -> NDArray[np.uint8]:
    """(C, H, W) raw → (H, W, 3) uint8 BGR for OpenCV, black level removed, optionally stretched
    and white-balanced (per-channel factors)."""
    cam = meta["camera"]
    top = 2 ** cam["bit_depth"] - 1 - cam["black_level_adu"]
    img = (planes.astype(np.float32) - cam["black_level_adu"]) / top * stretch
    if balance is not None:
        img *= balance[:, None, None]
    img = np.clip(img, 0, 1) ** (1 / 1.6 if stretch > 1 else 1.0)
    rgb = np.moveaxis(img, 0, -1)
    if rgb.shape[-1] == 1:
        rgb = np.repeat(rgb, 3, axis=-1)
    return (rgb[..., ::-1] * 255 + 0.5).astype(np.uint8)


def _panel(img: NDArray[np.uint8], title: str, size: int = PANEL) -> NDArray[np.uint8]:
    h, w = img.shape[:2]
    scale = size / max(h, w)
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_NEAREST
    resized = cv2.resize(img, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=interp)
    canvas = np.full((size + 22, size, 3), 255, np.uint8)
    canvas[22 : 22 + resized.shape[0], : resized.shape[1]] = resized
    cv2.putText(canvas, title, (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    return canvas


def _pick_planes(meta: dict[str, Any]) -> dict[str, int]:
    """Plane indices to show: brightfield, first single brightfield LED, a darkfield LED (low/high)."""
    planes = meta["planes"]
    picks: dict[str, int] = {}
    for p in planes:
        if p["led"] is None:
            picks.setdefault("brightfield", p["plane"])
        elif p["exposure_class"] == "normal" and not any(k.startswith("oblique") for k in picks):
            picks[f"oblique LED {p['led']}"] = p["plane"]
    df = [p for p in planes if p["exposure_class"] in ("low", "high")]
    if df:
        led = df[len(df) // 2]["led"]
        for p in df:
            if p["led"] == led:
                picks[f"darkfield LED {led} {p['exposure_class']}"] = p["plane"]
    return picks


def contact_sheet(field_path: Path, zoom_center_px: tuple[float, float] | None = None) -> NDArray[np.uint8]:
    """The contact sheet of a field folder as a BGR image."""
    field_path = Path(field_path)
    stack = read_image(field_path, "unstained")
    extra: list[tuple[str, RawImage]] = []
    if (field_path / "stained.json").exists():
        extra.append(("stained re-scan", read_image(field_path, "stained")))
    h, w = stack.pixels.shape[-2:]
    cx, cy = zoom_center_px or (w / 2, h / 2)
    half = ZOOM_UM / stack.meta["pixel_size_um"] / 2
    ys = slice(int(max(0, cy - half)), int(min(h, cy + half)))
    xs = slice(int(max(0, cx - half)), int(min(w, cx + half)))
    top, bottom = [], []
    picks = _pick_planes(stack.meta)
    bf = stack.pixels[picks.get("brightfield", 0)].astype(np.float32)
    background = np.median(bf.reshape(len(bf), -1), axis=1)
    balance = (background.max() / np.maximum(background, 1.0)).astype(np.float32)  # raw RGB → neutral grey
    for title, idx in picks.items():
        planes = stack.pixels[idx]
        stretch = 1.0
        if "darkfield" in title:
            stretch = max(1.0, 0.8 / max(_level(planes, stack.meta), 1e-4))
            title = f"{title} (x{stretch:.0f})"
        top.append(_panel(_to_rgb8(planes, stack.meta, stretch, balance), title))
        bottom.append(_panel(_to_rgb8(planes[:, ys, xs], stack.meta, stretch, balance), "zoom"))
    for title, image in extra:
        top.append(_panel(_to_rgb8(image.pixels, image.meta), title))
        bottom.append(_panel(_to_rgb8(image.pixels[:, ys, xs], image.meta), "zoom"))
    hr = _hr_panel(field_path, stack.meta, (cx, cy))
    if hr is not None:
        bottom.append(hr)
    width = max(len(top), len(bottom))
    blank = np.full_like(top[0], 255)
    rows = [np.hstack(r + [blank] * (width - len(r))) for r in (top, bottom)]
    return np.vstack(rows)


def _level(planes: NDArray[np.uint16], meta: dict[str, Any]) -> float:
    cam = meta["camera"]
    top = 2 ** cam["bit_depth"] - 1 - cam["black_level_adu"]
    return float(np.percentile(planes, 99.5) - cam["black_level_adu"]) / top


def _hr_panel(field_path: Path, meta: dict[str, Any], center_px: tuple[float, float]) -> NDArray[np.uint8] | None:
    """The 100x tile nearest the zoom centre, if the field has 100x tiles."""
    if not (field_path / "hr.json").exists():
        return None
    hr = read_image(field_path, "hr")
    centres = np.asarray(hr.meta.get("tile_centres_stage_um", []), float).reshape(-1, 2)
    if len(centres) == 0:
        return None
    stage = np.asarray(meta["stage_position_um"]) + (np.asarray(center_px) + 0.5) * meta["pixel_size_um"]
    k = int(np.argmin(np.hypot(*(centres - stage).T)))
    return _panel(_to_rgb8(hr.pixels[k], hr.meta), f"100x/1.25 tile {k}")


def first_wbc_center_px(field_path: Path) -> tuple[float, float] | None:
    """Where the simulator put the first white cell (reads the truth beside the scan, if any)."""
    truth = Path(field_path).parents[1] / "truth" / Path(field_path).name / "truth.json"
    if not truth.exists():
        return None
    wbcs = json.loads(truth.read_text()).get("wbcs", [])
    return (float(wbcs[0]["center_px"][0]), float(wbcs[0]["center_px"][1])) if wbcs else None


def write_contact_sheet(field_path: Path, out: Path) -> Path:
    sheet = contact_sheet(field_path, first_wbc_center_px(field_path))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(out), sheet):
        raise OSError(f"could not write {out}; is the folder writable and the suffix .png?")
    return out
