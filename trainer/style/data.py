"""Unpaired image domains for style training, and synthetic stained cells of a chosen stain.

A domain is a folder of images, read once into memory as float32 ``(C, H, W)`` in [0, 1]
(integer images divided by their dtype's maximum, so 8- and 16-bit files mix). RGB images are
PNG / JPEG / TIFF; N-channel images (another modality, e.g. a confocal reflectance +
fluorescence pair) are ``.npy`` arrays ``(C, H, W)``. Values are used as stored: A and B must be
in the same encoding as what the style model will see and produce (the daemon's stain and the
synthetic cells here are linear, scaled like the trainer's targets).

:func:`render_style_cells` writes such a folder from the simulator: white-cell crops of fields
stained with one style (``sim/stain.py``: ``mgg``, ``wright-giemsa``), the smears drawn from
``seed`` — two calls with different seeds give *different* cells, i.e. unpaired domains.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from numpy.typing import NDArray

from core.images import read_rgb
from trainer.errors import TrainerError

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".npy")


def _unit(img: NDArray[Any], path: Path) -> NDArray[np.float32]:
    if np.issubdtype(img.dtype, np.integer):
        return (img.astype(np.float32) / float(np.iinfo(img.dtype).max)).astype(np.float32)
    if np.issubdtype(img.dtype, np.floating):
        if img.size and (float(np.nanmin(img)) < 0.0 or float(np.nanmax(img)) > 1.0 or not np.isfinite(img).all()):
            raise TrainerError(f"{path}: float images must hold finite values in [0, 1]")
        return img.astype(np.float32)
    raise TrainerError(f"{path}: unsupported dtype {img.dtype}; expected integer or float images")


def read_image(path: Path) -> NDArray[np.float32]:
    """One image as float32 ``(C, H, W)`` in [0, 1]."""
    if path.suffix.lower() == ".npy":
        try:
            arr = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise TrainerError(f"cannot read {path}: {exc}") from exc
        if arr.ndim != 3:
            raise TrainerError(f"{path}: expected a (C, H, W) array, found shape {arr.shape}")
        return _unit(arr, path)
    return _unit(read_rgb(path), path)


def read_folder(folder: Path, channels: int, min_size: int) -> list[NDArray[np.float32]]:
    """Every image of ``folder`` (sorted by name), each checked for ``channels`` and ``min_size``."""
    folder = Path(folder)
    if not folder.is_dir():
        raise TrainerError(f"image folder {folder} not found; expected a folder of {', '.join(IMAGE_SUFFIXES)} files")
    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise TrainerError(f"{folder} holds no images ({', '.join(IMAGE_SUFFIXES)})")
    images = []
    for p in paths:
        img = read_image(p)
        if img.shape[0] != channels:
            raise TrainerError(f"{p}: {img.shape[0]} channels, the config expects {channels} (data.a_channels "
                               "for domain A, 3 for domain B)")
        if min(img.shape[1:]) < min_size:
            raise TrainerError(f"{p}: {img.shape[1]}x{img.shape[2]} px is smaller than data.patch_size = {min_size}")
        images.append(img)
    return images


def random_crops(images: list[NDArray[np.float32]], n: int, size: int, rng: np.random.Generator,
                 augment: bool = True) -> torch.Tensor:
    """``(n, C, size, size)``: random images, random crops, random flips and quarter turns (stains have
    no orientation)."""
    out = []
    for i in rng.integers(0, len(images), n):
        img = images[int(i)]
        y = int(rng.integers(0, img.shape[1] - size + 1))
        x = int(rng.integers(0, img.shape[2] - size + 1))
        crop = img[:, y:y + size, x:x + size]
        if augment:
            crop = np.rot90(crop, int(rng.integers(0, 4)), axes=(1, 2))
            if rng.random() < 0.5:
                crop = crop[:, :, ::-1]
        out.append(np.ascontiguousarray(crop))
    return torch.from_numpy(np.stack(out))


def centre_crops(images: list[NDArray[np.float32]], size: int) -> torch.Tensor:
    """``(N, C, size, size)``: the centre of every image (the fixed validation set)."""
    out = []
    for img in images:
        y, x = (img.shape[1] - size) // 2, (img.shape[2] - size) // 2
        out.append(img[:, y:y + size, x:x + size])
    return torch.from_numpy(np.ascontiguousarray(np.stack(out)))


@dataclass
class Domains:
    """Training and validation images of both domains."""

    a_train: list[NDArray[np.float32]]
    a_val: list[NDArray[np.float32]]
    b_train: list[NDArray[np.float32]]
    b_val: list[NDArray[np.float32]]


def _split(images: list[NDArray[np.float32]], val_fraction: float) -> tuple[list[Any], list[Any]]:
    n_val = round(len(images) * val_fraction)
    if n_val and len(images) - n_val < 1:
        raise TrainerError(f"only {len(images)} image(s): too few to hold out {val_fraction:.0%} for validation")
    step = len(images) / n_val if n_val else 0
    val_idx = {int(k * step) for k in range(n_val)}
    return ([im for i, im in enumerate(images) if i not in val_idx],
            [im for i, im in enumerate(images) if i in val_idx])


def load_domains(a: Path, b: Path, a_channels: int, patch_size: int, val_fraction: float) -> Domains:
    """Both folders, each split evenly (every k-th image) into training and validation images."""
    a_train, a_val = _split(read_folder(a, a_channels, patch_size), val_fraction)
    b_train, b_val = _split(read_folder(b, 3, patch_size), val_fraction)
    log.info("style data: A %d train / %d val, B %d train / %d val", len(a_train), len(a_val), len(b_train),
             len(b_val))
    return Domains(a_train, a_val, b_train, b_val)


# --- synthetic cells ---------------------------------------------------------------------------

def render_style_cells(out: Path, style: str, count: int, seed: int, crop_px: int = 64, field_px: int = 192,
                       lab_variation: float = 0.15, wbc_per_mm2: float = 1500.0, also: tuple[str, ...] = (),
                       progress: Callable[[int, int], None] | None = None) -> int:
    """Write ``count`` white-cell crops stained with ``style`` as 8-bit PNGs into ``out``; returns the count.

    Each field is a new smear (seeds ``seed·10⁶ + k``) crowded with white cells (``wbc_per_mm2``); a crop
    is the ``crop_px`` square around a white cell lying wholly inside the field, scaled like the trainer's
    targets ``(adu − black) / (max − black)``. ``also``: further styles of the *same* cells (same smear,
    same lab variation and uptake), written to ``out/<style>/`` under the same file names — paired
    truth for evaluating a style model, never for training it (then ``style`` goes to ``out/<style>/`` too).
    """
    from sim.camera import SensorConfig
    from trainer.data.synthetic import render_stained_field

    cam = SensorConfig()
    black, top = cam.black_level_adu, 2**cam.bit_depth - 1
    styles = (style, *also)
    dirs = [Path(out) / st if also else Path(out) for st in styles]
    for d in dirs:
        d.mkdir(parents=True, exist_ok=True)
    half, written, k = crop_px // 2, 0, 0
    smear = {"wbc_per_mm2": wbc_per_mm2, "margin_um": 8.0}
    while written < count:
        fields = [render_stained_field(field_px, seed * 1_000_000 + k, st, lab_variation, smear=smear) for st in styles]
        for c in fields[0][1]:
            cx, cy = (round(v) for v in c["center_px"])
            if not c["inside"] or not (half <= cx <= field_px - half and half <= cy <= field_px - half):
                continue
            for d, (rgb, _) in zip(dirs, fields, strict=True):
                crop = rgb[:, cy - half:cy + half, cx - half:cx + half].astype(np.float32)
                unit = np.clip((crop - black) / (top - black), 0.0, 1.0)
                bgr = np.rint(np.moveaxis(unit, 0, -1)[..., ::-1] * 255).astype(np.uint8)
                if not cv2.imwrite(str(d / f"{style}_{seed}_{k:04d}_{c['id']}.png"), bgr):
                    raise TrainerError(f"cannot write PNGs into {d}")
            written += 1
            if written == count:
                break
        k += 1
        if progress:
            progress(written, count)
    return written
