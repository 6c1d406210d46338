from __future__ import annotations

import numpy as np
import pytest

from edge.device.config import DetectorConfig
from edge.device.detect import detect_cells, match_detections, maximum_filter
from edge.device.stack import Stack

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


def test_binned_difference_of_gaussians_is_within_one_percent_of_the_full_one() -> None:
    from edge.device.detect import difference_of_gaussians, gaussian_blur

    high, _ = synthetic([(50, 60, 10.0), (140, 120, 12.0), (180, 30, 8.0)], shape=(256, 256))
    full = gaussian_blur(high, 3.5 / PX) - gaussian_blur(high, 10.0 / PX)
    binned = difference_of_gaussians(high, 3.5 / PX, 10.0 / PX)
    assert binned.shape == full.shape and binned.dtype == np.float32
    assert np.abs(binned - full).max() < 0.01 * full.max()
    odd = high[:255]  # odd sizes and narrow Gaussians: the full-resolution result itself
    np.testing.assert_array_equal(difference_of_gaussians(odd, 3.5 / PX, 10.0 / PX),
                                  gaussian_blur(odd, 3.5 / PX) - gaussian_blur(odd, 10.0 / PX))


def test_binned_detection_finds_the_same_cells_on_the_bench(bench_fields: list[Stack],
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """The daemon's decision (which cells, where) is the same as with the full-resolution difference of
    Gaussians on the bench fields: same count, centres within 1 px."""
    import edge.device.detect as detect
    from edge.device.cell_jobs import energy_maps

    cfg, found = DetectorConfig(), 0
    for stack in bench_fields:
        high, total = energy_maps(stack, cfg)
        binned = detect.detect_cells(high, total, stack.pixel_um, cfg)
        with monkeypatch.context() as m:
            m.setattr(detect, "DOG_BINNED_MIN_SIGMA_PX", float("inf"))
            full = detect.detect_cells(high, total, stack.pixel_um, cfg)
        assert len(binned) == len(full)
        for a, b in zip(binned, full, strict=True):
            assert np.hypot(a.center_px[0] - b.center_px[0], a.center_px[1] - b.center_px[1]) <= 1.0
            assert a.box_px == pytest.approx(b.box_px, abs=1) and a.score == pytest.approx(b.score, rel=0.02)
        found += len(full)
    assert found >= 2 * len(bench_fields)  # the fields have cells to find
