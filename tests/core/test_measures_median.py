"""``monotone_median``: the counting median of a camera plane's grey image is ``np.median``, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest

from core.measures import monotone_median


@pytest.mark.parametrize("shape", [(3, 8, 8), (3, 7, 9), (1, 5, 5), (2, 1, 1), (3, 64, 64)])
@pytest.mark.parametrize("high", [5, 4096, 65535])
def test_equals_numpy_median_bit_for_bit(shape: tuple[int, int, int], high: int) -> None:
    rng = np.random.default_rng(high + shape[1])
    for _ in range(20):
        raw = rng.integers(0, high, shape, endpoint=True).astype(np.uint16)
        grey = raw.astype(np.float32).mean(axis=0) - np.float32(100.3)
        expected, found = np.median(grey), monotone_median(grey, raw)
        assert found == expected and np.asarray(found).dtype == np.asarray(expected).dtype


def test_other_inputs_fall_back_to_numpy() -> None:
    raw = np.random.default_rng(0).random((3, 6, 6)).astype(np.float32)  # not integer counts
    grey = raw.mean(axis=0)
    assert monotone_median(grey, raw) == np.median(grey)
