"""Dynamic batching in the style of Triton's dynamic batcher, into preallocated batch buffers.

Policy (pure, :func:`batch_ready`): a batch leaves as soon as ``max_batch`` items wait, or when the
oldest item has waited ``max_queue_delay_ms``, or on shutdown (drain), or when the producer says no
more items are coming soon (:meth:`DynamicBatcher.flush`: the last cell of a field with no field
waiting behind it — waiting longer would only add latency). The queue is bounded
(``queue_size``): producers block while it is full, which pushes back on detection and acquisition
rather than growing memory. Batches are padded to the engine's profile sizes
(:func:`padded_size`); :class:`BatchStats` keeps the average batch size and the padding overhead.

With a ``slot_shape``, every item comes with its model input written by the producer straight into
a row of a batch buffer ``(max_batch, *slot_shape)`` (:meth:`DynamicBatcher.put`'s ``fill``), so a
batch is already one contiguous array (:attr:`Batch.x`, a view): the consumer (the inference
thread) never stacks or copies inputs. The buffers hold float32 inputs or, for a backend that
normalises camera counts itself, uint16 (``dtype``). Buffers are allocated on first need and reused; one handed
out by :meth:`~DynamicBatcher.get_batch` is not written again until the consumer gives it back
(:meth:`~DynamicBatcher.release`). At most ``ceil(queue_size / max_batch) + 1`` buffers exist, so
memory is bounded and, once every buffer has been used, flat.
"""

from __future__ import annotations

import bisect
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import numpy as np
from numpy.typing import NDArray

from edge.device.config import BatchingConfig

T = TypeVar("T")
#: Writes one item's model input into its row of the batch buffer (``slot_shape``, the batcher's ``dtype``).
Fill = Callable[[NDArray[Any]], None]


def padded_size(n: int, profile_sizes: Sequence[int]) -> int:
    """The smallest profile size ≥ ``n`` (``n`` itself when no profile is given or ``n`` exceeds all)."""
    sizes = sorted(profile_sizes)
    k = bisect.bisect_left(sizes, n)
    return sizes[k] if k < len(sizes) else n


def batch_ready(queued: int, oldest_wait_s: float, config: BatchingConfig, draining: bool = False) -> int:
    """How many items to take now (0 = keep waiting)."""
    if queued <= 0:
        return 0
    if queued >= config.max_batch:
        return config.max_batch
    if draining or oldest_wait_s * 1000.0 >= config.max_queue_delay_ms:
        return queued
    return 0


@dataclass
class BatchStats:
    batches: int = 0
    items: int = 0
    padded_slots: int = 0
    buffers: int = 0  #: batch buffers allocated (reused afterwards)

    @property
    def avg_batch_size(self) -> float:
        return self.items / self.batches if self.batches else 0.0

    def to_dict(self) -> dict[str, float]:
        return {"batches": self.batches, "items": self.items, "padded_slots": self.padded_slots,
                "avg_batch_size": round(self.avg_batch_size, 3), "buffers": self.buffers}


@dataclass
class _Buffer(Generic[T]):
    data: NDArray[Any] | None  # (max_batch, *slot_shape); None without a slot shape
    items: list[tuple[float, T]] = field(default_factory=list)  # (time queued, item), in order
    flushed: bool = False


@dataclass
class Batch(Generic[T]):
    """Items that leave together; ``x`` ``(len(items), *slot_shape)`` is their inputs (a view of the
    batcher's buffer: valid until :meth:`DynamicBatcher.release`), None without a slot shape."""

    items: list[T]
    x: NDArray[Any] | None = None
    _data: NDArray[Any] | None = None

    def __len__(self) -> int:
        return len(self.items)


class DynamicBatcher(Generic[T]):
    """A bounded queue that hands out batches according to :func:`batch_ready` (thread-safe)."""

    def __init__(self, config: BatchingConfig, slot_shape: tuple[int, ...] | None = None,
                 dtype: type[np.generic] = np.float32) -> None:
        self.config = config
        self.slot_shape = slot_shape
        #: The buffers' element type: float32 model inputs, or uint16 camera counts (a backend that normalises).
        self.dtype = dtype
        self.stats = BatchStats()
        self._queue: deque[_Buffer[T]] = deque()  # all but the last are full (max_batch items)
        self._free: list[NDArray[Any]] = []
        self._max_buffers = math.ceil(config.queue_size / config.max_batch) + 1
        self._queued = 0
        self._cond = threading.Condition()
        self._closed = False

    def __len__(self) -> int:
        with self._cond:
            return self._queued

    def _room(self) -> bool:
        if self._queued >= self.config.queue_size:
            return False
        tail = self._queue[-1] if self._queue else None
        return (tail is not None and len(tail.items) < self.config.max_batch) or self.slot_shape is None or \
            bool(self._free) or self.stats.buffers < self._max_buffers

    def put(self, item: T, fill: Fill | None = None, timeout: float | None = None) -> bool:
        """Queue ``item``, ``fill`` writing its input into its row of the batch buffer (with a slot shape;
        under the batcher's lock, so a row is never seen half written); blocks while the queue is full or
        no buffer is free. False if closed or still full at ``timeout``; if ``fill`` raises, nothing is queued."""
        with self._cond:
            ok = self._cond.wait_for(lambda: self._closed or self._room(), timeout)
            if self._closed or not ok:
                return False
            tail = self._queue[-1] if self._queue else None
            if tail is None or len(tail.items) >= self.config.max_batch:
                tail = _Buffer(self._buffer())
                self._queue.append(tail)
            try:
                if tail.data is not None:
                    if fill is None:
                        raise ValueError("this batcher has a slot shape: put needs a fill for the item's input")
                    fill(tail.data[len(tail.items)])
            except BaseException:
                if not tail.items:  # a buffer opened for this item: back to the pool
                    self._queue.pop()
                    if tail.data is not None:
                        self._free.append(tail.data)
                raise
            tail.items.append((time.monotonic(), item))
            self._queued += 1
            self._cond.notify_all()
            return True

    def _buffer(self) -> NDArray[Any] | None:
        if self.slot_shape is None:
            return None
        if self._free:
            return self._free.pop()
        self.stats.buffers += 1
        return np.empty((self.config.max_batch, *self.slot_shape), self.dtype)

    def get_batch(self, timeout: float | None = None) -> Batch[T] | None:
        """The next batch; an empty one on timeout, ``None`` once closed and drained."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while True:
                front = self._queue[0] if self._queue else None
                oldest = time.monotonic() - front.items[0][0] if front else 0.0
                n = batch_ready(len(front.items), oldest, self.config, self._closed or front.flushed) if front else 0
                if front is not None and n:
                    return self._take(front)
                if self._closed:
                    return None
                now = time.monotonic()
                waits = [] if deadline is None else [deadline - now]
                if front is not None:
                    waits.append(self.config.max_queue_delay_ms / 1000.0 - oldest)
                if deadline is not None and now >= deadline:
                    return Batch([])
                self._cond.wait(max(0.0, min(waits)) if waits else None)

    def _take(self, front: _Buffer[T]) -> Batch[T]:
        self._queue.popleft()
        n = len(front.items)
        self._queued -= n
        self.stats.batches += 1
        self.stats.items += n
        self._cond.notify_all()
        x = front.data[:n] if front.data is not None else None
        return Batch([item for _, item in front.items], x, front.data)

    def release(self, batch: Batch[T]) -> None:
        """The consumer is done with ``batch.x``: its buffer may be filled again."""
        if batch._data is None:
            return
        with self._cond:
            self._free.append(batch._data)
            batch._data = batch.x = None
            self._cond.notify_all()

    def flush(self) -> None:
        """Let every item queued now leave without waiting for ``max_queue_delay_ms`` (batches of up to
        ``max_batch``); items put later wait as usual, unless they join the last flushed batch."""
        with self._cond:
            for buf in self._queue:
                buf.flushed = True
            if self._queue:
                self._cond.notify_all()

    def close(self) -> None:
        """No more puts; queued items still come out (drain), then ``get_batch`` returns ``None``."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
