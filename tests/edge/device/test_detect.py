from __future__ import annotations

import numpy as np
import pytest

from edge.device.config import DetectorConfig
from edge.device.detect import detect_cells, match_detections, maximum_filter

PX = 0.293


def synthetic(centres: list[tuple[float, float, float]], shape: tuple[int, int] = (200, 200),
              seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """High-angle energy: bright discs (diameter µm) on a noisy background of 1."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    high = 1.0 + 0.05 * rng.standard_normal(shape).astype(np.float32)
    for cx, cy, d in centres:
        high += 4.0 * (((xx - cx) ** 2 + (yy - cy) ** 2) <= (d / PX / 2) ** 2)
    high = high.astype(np.float32)
    return high, high * 10


def test_finds_cell_sized_blobs_and_reports_size() -> None:
    high, total = synthetic([(50, 60, 10.0), (140, 120, 12.0)])
    dets = detect_cells(high, total, PX, DetectorConfig())
    assert len(dets) == 2
    assert match_detections([d.center_px for d in dets], [(50, 60), (140, 120)], 3).recall == 1.0
    for d in dets:
        x0, y0, x1, y1 = d.box_px
        assert x0 < d.center_px[0] < x1 and y0 < d.center_px[1] < y1
        assert 3.0 <= d.diameter_um <= 16.0


def test_size_limits_in_micrometres() -> None:
    high, total = synthetic([(100, 100, 10.0)])
    assert detect_cells(high, total, PX, DetectorConfig(min_diameter_um=12.0, max_diameter_um=30.0)) == []


def test_flat_field_has_no_cells() -> None:
    high, total = synthetic([])
    assert detect_cells(high, total, PX, DetectorConfig()) == []
    assert detect_cells(np.zeros((50, 50), np.float32), np.zeros((50, 50), np.float32), PX, DetectorConfig()) == []


def test_matching_is_one_to_one() -> None:
    m = match_detections([(0, 0), (1, 0)], [(0.5, 0)], 2)
    assert (m.true_positives, m.false_positives, m.false_negatives) == (1, 1, 0)


@pytest.mark.slow
def test_recall_and_precision_on_the_virtual_bench() -> None:
    from edge.bench.simbench import evaluate_detector

    # held-out seed (the defaults were tuned on seed 11); the targets
    res = evaluate_detector(fields=12, size_px=256, seed=23)
    assert res["recall"] >= 0.95 and res["precision"] >= 0.90, res


@pytest.mark.parametrize("size", [3, 5, 9])
def test_maximum_filter_matches_scipy(size: int) -> None:
    from scipy import ndimage

    image = np.random.default_rng(size).random((41, 57)).astype(np.float32)
    np.testing.assert_array_equal(maximum_filter(image, size), ndimage.maximum_filter(image, size=size, mode="nearest"))
