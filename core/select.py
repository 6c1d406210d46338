"""Exact order statistics of float32 maps and integer rows by radix selection (numpy only).

``np.partition`` (introselect) costs ~9 ns per element here: ~0.55 ms for a 256² float32 map, ~1.3 ms for
13 rows of 128² colour sums — the largest single item of the daemon's per-field processing. Selecting
by the values' bits instead takes a few linear passes: each value becomes an unsigned **key** whose
order is the values' order (float32: the IEEE bits with the sign bit flipped for positives and every
bit flipped for negatives; unsigned integers: themselves), one histogram of the keys' top bits per row
finds the bucket that holds each wanted rank, and only that bucket's few keys are partitioned. The
results are the same order statistics ``np.partition`` gives (the values themselves, not estimates).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

#: At most this many histogram bins over all rows, over the keys' range (32 kB of counts: no fresh pages
#: per call, and on a smooth 256² map a few hundred keys in the bucket that holds a rank).
_MAX_BINS = 1 << 12


def float32_keys(x: NDArray[np.float32]) -> NDArray[np.uint32]:
    """Unsigned keys ordered as the float32 values of ``x`` (−0.0 just below +0.0; NaN outside ±inf)."""
    bits = np.ascontiguousarray(x, np.float32).view(np.uint32)
    flip = (bits.view(np.int32) >> 31).view(np.uint32)  # all ones for negatives, zero otherwise
    flip |= np.uint32(0x80000000)
    return np.bitwise_xor(bits, flip, out=flip)


def keys_to_float32(keys: NDArray[np.uint32]) -> NDArray[np.float32]:
    """The inverse of :func:`float32_keys`."""
    k = np.asarray(keys, np.uint32)
    top = (k >> 31).astype(bool)
    return np.where(top, k ^ np.uint32(0x80000000), ~k).astype(np.uint32).view(np.float32)


def select_rows(keys: NDArray[np.unsignedinteger], ranks: Sequence[int]) -> NDArray[np.unsignedinteger]:
    """``np.partition(keys, ranks, axis=1)[:, ranks]`` of unsigned ``keys`` ``(K, n)``: ``(K, len(ranks))``.

    One histogram of every row's keys over their range (``K`` x at most 2^12 / K bins of equal width), then,
    per row and bucket, a partition of the keys that fall in the bucket holding the rank (a few hundred on
    a smooth map; at worst all of them, as ``np.partition``).
    """
    k2 = np.asarray(keys)
    if k2.ndim != 2 or k2.dtype.kind != "u":
        raise ValueError(f"select_rows: expected unsigned keys (K, n), found {k2.dtype} {k2.shape}")
    rows, n = k2.shape
    if n == 0 or not all(0 <= r < n for r in ranks):
        raise ValueError(f"select_rows: ranks {list(ranks)} outside 0 .. {n - 1}")
    low = k2.min()
    span = int(k2.max()) - int(low)
    per_row = max(2, _MAX_BINS // rows)
    shift = max(0, span.bit_length() - (per_row.bit_length() - 1))
    buckets = (span >> shift) + 1  # bins per row, over the keys' range
    hi = np.subtract(k2, low, dtype=k2.dtype)
    hi >>= k2.dtype.type(shift)
    hi = hi.astype(np.intp)
    if rows > 1:
        hi += (np.arange(rows, dtype=np.intp) * buckets)[:, None]
    cum = np.cumsum(np.bincount(hi.ravel(), minlength=rows * buckets).reshape(rows, buckets), axis=1)
    out = np.empty((rows, len(ranks)), k2.dtype)
    offsets = np.arange(rows, dtype=np.intp) * buckets
    for bucket, group in _bucket_groups(cum, ranks):
        below = np.where(bucket > 0, cum[np.arange(rows), bucket - 1], 0)
        counts = cum[np.arange(rows), bucket] - below
        cand = k2[hi == (bucket + offsets)[:, None]]  # row-major: each row's bucket, ``counts`` keys each
        ends = np.cumsum(counts)
        for row, (end, count, low_row) in enumerate(zip(ends.tolist(), counts.tolist(), below.tolist(), strict=True)):
            seg = cand[end - count:end]
            for j in group:
                out[row, j] = _select_one(seg, ranks[j] - low_row)
    return out


def _bucket_groups(cum: NDArray[np.intp], ranks: Sequence[int]) -> list[tuple[NDArray[np.intp], list[int]]]:
    """Each row's bucket holding each rank (``cum``: the rows' cumulative histograms ``(K, B)``), the ranks
    that fall in the same buckets in every row grouped (a median's two middle ranks, usually)."""
    groups: list[tuple[NDArray[np.intp], list[int]]] = []
    for j, r in enumerate(ranks):
        bucket = (cum <= r).sum(axis=1)
        if groups and np.array_equal(groups[-1][0], bucket):
            groups[-1][1].append(j)
        else:
            groups.append((bucket, [j]))
    return groups


def order_statistics(x: NDArray[np.float32], ranks: Sequence[int]) -> NDArray[np.float32]:
    """The ``ranks``-th smallest values of a float32 array without NaN (flattened), as ``np.partition`` gives
    them: ``(len(ranks),)`` float32."""
    keys = float32_keys(np.asarray(x, np.float32).ravel())
    return keys_to_float32(select_rows(keys[None], ranks)[0])


#: A bucket with more keys than this is selected from by another histogram over its (narrower) range.
_PARTITION_MAX = 2048


def _select_one(keys: NDArray[np.unsignedinteger], rank: int) -> np.unsignedinteger:
    """The ``rank``-th smallest of ``keys`` ``(m,)``: partitioned when few, else by :func:`select_rows` again
    (the bucket's range is 2^12 times narrower each time, so this ends; equal keys end it at once)."""
    if len(keys) <= _PARTITION_MAX or keys.min() == keys.max():
        return np.partition(keys, rank)[rank]
    return select_rows(keys[None], [rank])[0, 0]
