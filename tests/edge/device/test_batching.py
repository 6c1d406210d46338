from __future__ import annotations

import threading

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
        got.append(batch)
    assert got == [[0, 1, 2, 3], [4, 5]]
    assert b.stats.avg_batch_size == 3.0


def test_partial_batch_leaves_after_max_queue_delay() -> None:
    b: DynamicBatcher[int] = DynamicBatcher(CFG)
    b.put(1)
    assert b.get_batch(timeout=2.0) == [1]
    assert b.get_batch(timeout=0.0) == []


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
    assert b.get_batch() == [0, 1, 2, 3]
    assert done.wait(5.0)
    t.join()
    b.close()


def test_flush_lets_queued_items_leave_at_once_and_later_ones_wait() -> None:
    b: DynamicBatcher[int] = DynamicBatcher(BatchingConfig(max_batch=4, max_queue_delay_ms=10_000, queue_size=16))
    for i in range(6):
        b.put(i)
    b.flush()
    assert b.get_batch(timeout=0) == [0, 1, 2, 3]  # max_batch still caps a batch
    assert b.get_batch(timeout=0) == [4, 5]  # the rest of the flushed items, without the 10 s delay
    b.put(6)
    assert b.get_batch(timeout=0.05) == []  # not flushed: waits for company or the delay
    b.flush()
    assert b.get_batch(timeout=0) == [6]
