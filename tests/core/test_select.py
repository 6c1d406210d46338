"""Radix selection (core.select) against np.partition: the same order statistics, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest

from core import select
from core.select import float32_keys, keys_to_float32, order_statistics, select_rows


def _floats(rng: np.random.Generator, n: int, kind: str) -> np.ndarray:
    if kind == "smooth":  # an energy map's values: positive, around 1
        return np.abs(rng.standard_normal(n) * 0.3 + 1).astype(np.float32)
    if kind == "signed":
        return (rng.standard_normal(n) * 100).astype(np.float32)
    if kind == "ties":
        x = rng.integers(-3, 4, n).astype(np.float32)
        x[rng.random(n) < 0.5] = 1.5
        return x
    if kind == "wide":  # subnormals to 1e30, both signs, infinities
        x = (rng.standard_normal(n) * np.float32(10.0) ** rng.integers(-44, 30, n)).astype(np.float32)
        x[rng.integers(0, n, 3)] = np.inf
        x[rng.integers(0, n, 2)] = -np.inf
        return x
    raise ValueError(kind)


def test_keys_order_as_the_floats_and_invert() -> None:
    x = np.array([-np.inf, -3.5, -1e-40, -0.0, 0.0, 1e-40, 2.0, np.inf], np.float32)
    k = float32_keys(x)
    assert (np.diff(k.astype(np.int64)) > 0).all()
    np.testing.assert_array_equal(keys_to_float32(k).view(np.uint32), x.view(np.uint32))


@pytest.mark.parametrize("kind", ["smooth", "signed", "ties", "wide"])
@pytest.mark.parametrize("n", [1, 2, 5, 100, 4097, 65536])
def test_order_statistics_equal_partition(kind: str, n: int) -> None:
    rng = np.random.default_rng(n)
    for _ in range(5):
        x = _floats(rng, n, kind)
        ranks = sorted({0, n // 2, max(0, n // 2 - 1), (n - 1) * 99 // 100, n - 1, int(rng.integers(0, n))})
        got = order_statistics(x, ranks)
        want = np.partition(x, ranks)[ranks]
        assert got.dtype == np.float32
        np.testing.assert_array_equal(got, want)  # -0.0 == 0.0: numpy's partition does not order them either


def test_a_large_bucket_is_split_again(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(select, "_PARTITION_MAX", 16)  # every bucket goes through another histogram
    rng = np.random.default_rng(3)
    x = np.concatenate([rng.random(5000, np.float32) * 1e-3 + 1, rng.random(50, np.float32) * 1e6]).astype(np.float32)
    ranks = [0, 17, 2525, 4999, 5000, 5049]
    np.testing.assert_array_equal(order_statistics(x, ranks), np.partition(x, ranks)[ranks])


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.uint32, np.uint64])
@pytest.mark.parametrize("shape", [(1, 1), (13, 16384), (3, 7), (40, 100)])
def test_select_rows_equal_partition_per_row(dtype: type, shape: tuple[int, int]) -> None:
    rng = np.random.default_rng(shape[0])
    top = min(np.iinfo(dtype).max, 12285 if dtype != np.uint8 else 255)
    keys = rng.integers(0, top, shape, endpoint=True).astype(dtype)
    keys[0] = keys[0, 0]  # a constant row
    n = shape[1]
    ranks = sorted({0, n // 2, max(0, n // 2 - 1), n - 1})
    got = select_rows(keys, ranks)
    assert got.dtype == keys.dtype and got.shape == (shape[0], len(ranks))
    np.testing.assert_array_equal(got, np.partition(keys, ranks, axis=1)[:, ranks])


def test_select_rows_refuses_what_it_cannot_do() -> None:
    with pytest.raises(ValueError, match="unsigned keys"):
        select_rows(np.zeros((2, 3), np.int32), [0])
    with pytest.raises(ValueError, match="outside"):
        select_rows(np.zeros((2, 3), np.uint16), [3])
