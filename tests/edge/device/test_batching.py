from __future__ import annotations

import threading

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge.device.batching import DynamicBatcher, batch_ready, padded_size
from edge.device.config import BatchingConfig

CFG = BatchingConfig(max_batch=4, max_queue_delay_ms=10.0, queue_size=8)


@given(st.integers(1, 64), st.lists(st.integers(1, 64), max_size=6))
def test_padded_size_is_smallest_profile_that_fits(n: int, sizes: list[int]) -> None:
    p = padded_size(n, sizes)
    assert p >= n
    assert p == n or p in sizes
    assert not [s for s in sizes if n <= s < p]


def test_batch_policy() -> None:
    assert batch_ready(0, 1.0, CFG) == 0
    assert batch_ready(5, 0.0, CFG) == 4  # full batch leaves at once
    assert batch_ready(2, 0.001, CFG) == 0  # wait for more
    assert batch_ready(2, 0.011, CFG) == 2  # max queue delay reached
    assert batch_ready(2, 0.0, CFG, draining=True) == 2


def test_batcher_drains_on_close_and_counts() -> None:
    b: DynamicBatcher[int] = DynamicBatcher(CFG)
    for i in range(6):
        assert b.put(i)
    b.close()
    assert not b.put(99)
    got = []
    while (batch := b.get_batch()) is not None:
        got.append(batch.items)
    assert got == [[0, 1, 2, 3], [4, 5]]
    assert b.stats.avg_batch_size == 3.0


def test_partial_batch_leaves_after_max_queue_delay() -> None:
    b: DynamicBatcher[int] = DynamicBatcher(CFG)
    b.put(1)
    assert b.get_batch(timeout=2.0).items == [1]
    assert b.get_batch(timeout=0.0).items == []


def test_bounded_queue_blocks_producer_until_consumed() -> None:
    b: DynamicBatcher[int] = DynamicBatcher(CFG)
    for i in range(8):
        b.put(i)
    assert not b.put(8, timeout=0.0)  # full
    done = threading.Event()

    def producer() -> None:
        b.put(8)
        done.set()

    t = threading.Thread(target=producer)
    t.start()
    assert b.get_batch().items == [0, 1, 2, 3]
    assert done.wait(5.0)
    t.join()
    b.close()


def test_flush_lets_queued_items_leave_at_once_and_later_ones_wait() -> None:
    b: DynamicBatcher[int] = DynamicBatcher(BatchingConfig(max_batch=4, max_queue_delay_ms=10_000, queue_size=16))
    for i in range(6):
        b.put(i)
    b.flush()
    assert b.get_batch(timeout=0).items == [0, 1, 2, 3]  # max_batch still caps a batch
    assert b.get_batch(timeout=0).items == [4, 5]  # the rest of the flushed items, without the 10 s delay
    b.put(6)
    assert b.get_batch(timeout=0.05).items == []  # not flushed: waits for company or the delay
    b.flush()
    assert b.get_batch(timeout=0).items == [6]


SLOT = (2, 3, 3)  # a cell's input (I·C, P, P)


def _fill(v: float):  # type: ignore[no-untyped-def]
    def fill(row: np.ndarray) -> None:
        row[...] = v
    return fill


def test_buffered_batches_are_contiguous_views_in_order() -> None:
    b: DynamicBatcher[int] = DynamicBatcher(CFG, SLOT)
    for i in range(6):
        assert b.put(i, _fill(i))
    b.close()
    first, second = b.get_batch(), b.get_batch()
    assert first is not None and second is not None and b.get_batch() is None
    assert first.items == [0, 1, 2, 3] and second.items == [4, 5]
    for batch in (first, second):
        assert batch.x is not None and batch.x.shape == (len(batch), *SLOT) and batch.x.flags.c_contiguous
        assert [float(v) for v in batch.x[:, 0, 0, 0]] == [float(i) for i in batch.items]
        assert np.all(batch.x == np.asarray(batch.items, np.float32)[:, None, None, None])


def test_buffers_hold_the_batchers_element_type() -> None:
    b: DynamicBatcher[int] = DynamicBatcher(CFG, SLOT, np.uint16)
    assert b.put(0, lambda row: row.fill(4095))
    b.close()
    batch = b.get_batch()
    assert batch is not None and batch.x is not None and batch.x.dtype == np.uint16 and int(batch.x.max()) == 4095


def test_a_buffer_being_inferred_is_not_written_until_released_then_reused() -> None:
    cfg = BatchingConfig(max_batch=2, max_queue_delay_ms=0.0, queue_size=2)  # at most 2 buffers
    b: DynamicBatcher[int] = DynamicBatcher(cfg, SLOT)
    b.put(0, _fill(0))
    b.put(1, _fill(1))
    held = b.get_batch()  # "being inferred"
    assert held is not None and held.x is not None
    data = held.x
    snapshot = data.copy()
    b.put(2, _fill(2))
    b.put(3, _fill(3))  # the queue is full: the next put needs the held buffer back
    assert not b.put(4, _fill(4), timeout=0.05)
    nxt = b.get_batch()
    assert nxt is not None and nxt.x is not None and not np.shares_memory(nxt.x, data)
    assert not b.put(4, _fill(4), timeout=0.05)  # both buffers are out: the producer waits, nothing is overwritten
    np.testing.assert_array_equal(data, snapshot)
    done = threading.Event()

    def producer() -> None:
        b.put(4, _fill(4))
        done.set()

    t = threading.Thread(target=producer)
    t.start()
    assert not done.wait(0.05)
    b.release(held)
    assert done.wait(5.0)
    t.join()
    assert held.x is None  # released: the view is gone from the batch
    again = b.get_batch()
    assert again is not None and again.items == [4] and again.x is not None
    assert np.shares_memory(again.x, data)  # the released buffer was reused
    assert float(again.x[0, 0, 0, 0]) == 4.0
    assert b.stats.buffers == 2
    b.release(nxt)
    b.release(again)
    b.release(again)  # twice is harmless


def test_a_failing_fill_queues_nothing_and_keeps_the_buffer() -> None:
    b: DynamicBatcher[int] = DynamicBatcher(CFG, SLOT)

    def broken(row: np.ndarray) -> None:
        raise RuntimeError("no input")

    with pytest.raises(RuntimeError):
        b.put(0, broken)
    assert len(b) == 0
    b.put(1, _fill(1))
    b.close()
    batch = b.get_batch()
    assert batch is not None and batch.items == [1] and b.stats.buffers == 1
    with pytest.raises(ValueError, match="needs a fill"):
        DynamicBatcher(CFG, SLOT).put(2)
