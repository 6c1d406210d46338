"""100x tiles: LoG matching with scale refinement, resampling onto the 20x grid."""

from __future__ import annotations

import cv2
import numpy as np
from scipy import ndimage as ndi

from trainer.data.config import HrConfig
from trainer.data.hr import log_preprocess, match_tile, resample_tile

IDENTITY = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])


def _fine_scene(size: int = 600, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    g = 2000 + 1200 * ndi.gaussian_filter(rng.standard_normal((size, size)), 6.0)
    return np.repeat(g[None], 3, axis=0).clip(16, 4095).astype(np.float32)


def test_tile_is_found_and_resampled_onto_the_20x_grid() -> None:
    ratio = 5.0
    fine = _fine_scene()
    low = np.stack([cv2.resize(c, None, fx=1 / ratio, fy=1 / ratio, interpolation=cv2.INTER_AREA) for c in fine])
    tile = fine[:, 200:360, 180:340].astype(np.uint16)  # 160 px of 100x: 32 px of 20x, top-left (36, 40)
    expected_centre = (36 + 16 - 0.5 + 1.3, 40 + 16 - 0.5 - 0.9)  # the stage puts it ~1 px off
    m = match_tile(tile, low.astype(np.uint16), IDENTITY, expected_centre, ratio, HrConfig(search_um=1.5), 0.293)
    assert abs(m.origin_x - 36) < 0.15 and abs(m.origin_y - 40) < 0.15 and m.scale == 1.0 and m.score > 0.8
    out, cover = resample_tile(tile, m, 38, 42, 24)
    assert cover == 1.0
    np.testing.assert_allclose(out[:, 2:-2, 2:-2], low[:, 44:64, 40:60], rtol=0.03)


def test_scale_refinement_finds_a_magnification_error() -> None:
    ratio = 5.0
    fine = _fine_scene(seed=1)
    low = np.stack([cv2.resize(c, None, fx=1 / ratio, fy=1 / ratio, interpolation=cv2.INTER_AREA) for c in fine])
    zoom = np.stack([cv2.resize(c, None, fx=1.03, fy=1.03, interpolation=cv2.INTER_LINEAR) for c in fine])
    tile = zoom[:, 260:460, 260:460].astype(np.uint16)  # the tile's optics magnify 3 % more
    m = match_tile(tile, low.astype(np.uint16), IDENTITY, (70.0, 70.0), ratio,
                   HrConfig(scales=(0.96, 0.97, 0.98, 1.0, 1.02)), 0.293)
    assert m.scale == 0.97


def test_log_preprocessing_removes_a_constant() -> None:
    img = np.full((32, 32), 5.0, np.float32)
    np.testing.assert_allclose(log_preprocess(img, HrConfig()), img, atol=1e-4)
