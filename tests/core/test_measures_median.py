"""The counting path of ``pls_shift``'s normalised grey image equals the float path, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest

from core.measures import _normalised_grey


def float_path(plane: np.ndarray, black: float) -> np.ndarray:
    """The straightforward definition: float mean over colours minus black, over its median."""
    g = np.asarray(plane, np.float32).mean(axis=0) - np.float32(black)
    return (g / max(float(np.median(g)), 1e-6)).astype(np.float32)


@pytest.mark.parametrize("shape", [(3, 8, 8), (3, 7, 9), (1, 5, 5), (2, 1, 1), (3, 64, 64), (4, 33, 31)])
@pytest.mark.parametrize("high", [5, 4095, 65535])
@pytest.mark.parametrize("black", [0.0, 100.3, 5000.0])
def test_counting_path_equals_float_path_bit_for_bit(shape: tuple[int, int, int], high: int, black: float) -> None:
    rng = np.random.default_rng(high + shape[1] + int(black))
    for _ in range(10):
        raw = rng.integers(0, high, shape, endpoint=True).astype(np.uint16 if high > 255 else np.uint8)
        expected, got = float_path(raw, black), _normalised_grey(raw, black)
        assert got.dtype == np.float32
        np.testing.assert_array_equal(got, expected)


def test_float_planes_take_the_float_path() -> None:
    raw = np.random.default_rng(0).random((3, 6, 6)).astype(np.float32) * 1000
    np.testing.assert_array_equal(_normalised_grey(raw, 10.0), float_path(raw, 10.0))


def test_pls_shift_is_unchanged_by_the_counting_path() -> None:
    from core.measures import pls_shift

    rng = np.random.default_rng(3)
    base = rng.integers(200, 3000, (1, 3, 48, 40)).astype(np.uint16)
    stack = np.concatenate([base, *(np.clip(base * (0.4 + 0.1 * i), 0, 4095).astype(np.uint16)
                                    + rng.integers(0, 40, base.shape).astype(np.uint16) for i in range(5))])
    oblique = [1, 2, 3, 4, 5]
    pseudo = np.mean([float_path(stack[i], 100.0) for i in oblique], axis=0, dtype=np.float32)
    real = float_path(stack[0], 100.0)
    import cv2

    window = cv2.createHanningWindow(real.shape[::-1], cv2.CV_32F)
    (dx, dy), response = cv2.phaseCorrelate(pseudo - pseudo.mean(), real - real.mean(), window)
    got = pls_shift(stack, 0, oblique, 100.0)
    assert (got.dx, got.dy, got.response, got.planes_used) == (dx, dy, response, 5)


@pytest.mark.parametrize("n", [1, 2, 3, 4, 7, 100, 101, 65536])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_median_equals_numpy_bit_for_bit(n: int, dtype: type) -> None:
    from core.measures import median

    rng = np.random.default_rng(n)
    for _ in range(20):
        x = (rng.standard_normal(n) * 100).astype(dtype)
        x[rng.random(n) < 0.3] = dtype(1.5)  # ties
        assert median(x) == float(np.median(x))
        assert median(x.reshape(-1, 1) if n % 2 else x.reshape(2, -1)) == float(np.median(x))
    assert median(np.array([1, 5, 2, 9], np.uint16)) == float(np.median(np.array([1, 5, 2, 9])))  # numpy's path


def test_median_of_an_array_with_nan_is_nan() -> None:
    from core.measures import median

    x = np.arange(10, dtype=np.float32)
    x[3] = np.nan
    assert np.isnan(median(x)) and np.isnan(np.median(x))


@pytest.mark.parametrize("shape", [(5, 3, 16, 16), (4, 3, 7, 9), (1, 1, 1, 1), (3, 2, 5, 4)])
def test_all_planes_at_once_equal_the_float_path_of_each(shape: tuple[int, int, int, int]) -> None:
    from core.measures import _normalised_greys

    rng = np.random.default_rng(shape[0] * 7 + shape[2])
    planes = np.stack([rng.integers(0, high, shape[1:], endpoint=True) for high in (4095, 30, 65535, 3, 800)
                       ][:shape[0]]).astype(np.uint16)
    planes[-1] = 0  # a dark plane: its median guard
    for black in (0.0, 16.0, 100.3):
        got = _normalised_greys(planes, black)
        assert got.shape == (shape[0], *shape[2:]) and got.dtype == np.float32
        for g, plane in zip(got, planes, strict=True):
            np.testing.assert_array_equal(g, float_path(plane, black))


def test_pls_shift_in_groups_of_planes_equals_all_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    import core.measures as measures

    rng = np.random.default_rng(5)
    stack = rng.integers(100, 3000, (7, 3, 32, 40)).astype(np.uint16)
    whole = measures.pls_shift(stack, 0, [1, 2, 3, 4, 5, 6], 16.0)
    monkeypatch.setattr(measures, "_GREY_CHUNK_BYTES", 2 * stack[0].nbytes)  # groups of two planes
    assert measures.pls_shift(stack, 0, [1, 2, 3, 4, 5, 6], 16.0) == whole
