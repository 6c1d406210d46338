"""Reading RGB image files (PNG, JPEG, TIFF; 8 or 16 bit) into channel-first arrays."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
import tifffile
from numpy.typing import NDArray


class ImageError(ValueError):
    """An image file cannot be read as RGB; the message names the file and what was found."""


def read_rgb(path: Path) -> NDArray[Any]:
    """An RGB image as ``(3, H, W)`` in its own dtype (RGBA drops alpha; grey is refused)."""
    path = Path(path)
    if path.suffix.lower() in (".tif", ".tiff"):
        try:
            img = tifffile.imread(path)
        except (OSError, ValueError, tifffile.TiffFileError) as exc:
            raise ImageError(f"cannot read {path}: {exc}") from exc
        if img.ndim == 3 and img.shape[0] in (3, 4) and img.shape[-1] not in (3, 4):
            img = np.moveaxis(img, 0, -1)
    else:
        decoded = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if decoded is None:
            raise ImageError(f"cannot read {path}: not an image OpenCV can decode (or missing)")
        img = np.asarray(decoded)
        if img.ndim == 3:
            img = img[..., 2::-1] if img.shape[-1] >= 3 else img  # BGR(A) → RGB
    if img.ndim != 3 or img.shape[-1] < 3:
        raise ImageError(f"{path}: expected an RGB image, found shape {img.shape}; a colour image is needed")
    return np.moveaxis(img[..., :3], -1, 0)


def read_rgb_unit(path: Path) -> NDArray[np.float64]:
    """An RGB image as float ``(H, W, 3)`` in [0, 1] (8-bit / 255, 16-bit / 65535)."""
    rgb = read_rgb(path)
    scale = 65535.0 if rgb.dtype == np.uint16 else 255.0 if rgb.dtype == np.uint8 else 1.0
    return np.moveaxis(rgb, 0, -1).astype(np.float64) / scale
