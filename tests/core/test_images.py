from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import tifffile

from core.images import ImageError, read_rgb, read_rgb_unit


def test_png_and_tiff_read_as_channel_first_rgb(tmp_path: Path) -> None:
    rgb = np.random.default_rng(0).integers(0, 256, (3, 8, 10), dtype=np.uint8)
    cv2.imwrite(str(tmp_path / "a.png"), np.moveaxis(rgb, 0, -1)[..., ::-1])  # OpenCV writes BGR
    np.testing.assert_array_equal(read_rgb(tmp_path / "a.png"), rgb)
    deep = rgb.astype(np.uint16) * 257
    tifffile.imwrite(tmp_path / "a.tif", np.moveaxis(deep, 0, -1), photometric="rgb")
    np.testing.assert_array_equal(read_rgb(tmp_path / "a.tif"), deep)
    np.testing.assert_allclose(read_rgb_unit(tmp_path / "a.tif"), np.moveaxis(rgb, 0, -1) / 255.0)


def test_grey_and_missing_images_are_refused(tmp_path: Path) -> None:
    cv2.imwrite(str(tmp_path / "grey.png"), np.zeros((4, 4), np.uint8))
    with pytest.raises(ImageError, match=r"expected an RGB image, found shape \(4, 4\)"):
        read_rgb(tmp_path / "grey.png")
    with pytest.raises(ImageError, match="cannot read"):
        read_rgb(tmp_path / "missing.png")
