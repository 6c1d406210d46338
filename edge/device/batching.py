"""Dynamic batching in the style of Triton's dynamic batcher.

Policy (pure, :func:`batch_ready`): a batch leaves as soon as ``max_batch`` items wait, or when the
oldest item has waited ``max_queue_delay_ms``, or on shutdown (drain), or when the producer says no
more items are coming soon (:meth:`DynamicBatcher.flush`: the last cell of a field with no field
waiting behind it — waiting longer would only add latency). The queue is bounded
(``queue_size``): producers block while it is full, which pushes back on detection and acquisition
rather than growing memory. Batches are padded to the engine's profile sizes
(:func:`padded_size`); :class:`BatchStats` keeps the average batch size and the padding overhead.
"""

from __future__ import annotations

import bisect
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from edge.device.config import BatchingConfig

T = TypeVar("T")


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

    @property
    def avg_batch_size(self) -> float:
        return self.items / self.batches if self.batches else 0.0

    def to_dict(self) -> dict[str, float]:
        return {"batches": self.batches, "items": self.items, "padded_slots": self.padded_slots,
                "avg_batch_size": round(self.avg_batch_size, 3)}


class DynamicBatcher(Generic[T]):
    """A bounded queue that hands out batches according to :func:`batch_ready` (thread-safe)."""

    def __init__(self, config: BatchingConfig) -> None:
        self.config = config
        self.stats = BatchStats()
        self._items: deque[tuple[float, T]] = deque()
        self._cond = threading.Condition()
        self._closed = False
        self._flush = 0  # how many items at the front may leave without waiting (flush)

    def __len__(self) -> int:
        with self._cond:
            return len(self._items)

    def put(self, item: T, timeout: float | None = None) -> bool:
        """Queue ``item``; blocks while the queue is full. False if closed or still full at ``timeout``."""
        with self._cond:
            ok = self._cond.wait_for(lambda: self._closed or len(self._items) < self.config.queue_size, timeout)
            if self._closed or not ok:
                return False
            self._items.append((time.monotonic(), item))
            self._cond.notify_all()
            return True

    def get_batch(self, timeout: float | None = None) -> list[T] | None:
        """The next batch; ``[]`` on timeout, ``None`` once closed and drained."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while True:
                oldest = time.monotonic() - self._items[0][0] if self._items else 0.0
                n = batch_ready(len(self._items), oldest, self.config, self._closed or self._flush > 0)
                if n:
                    batch = [self._items.popleft()[1] for _ in range(n)]
                    self._flush = max(0, self._flush - n)
                    self.stats.batches += 1
                    self.stats.items += n
                    self._cond.notify_all()
                    return batch
                if self._closed:
                    return None
                now = time.monotonic()
                waits = [] if deadline is None else [deadline - now]
                if self._items:
                    waits.append(self.config.max_queue_delay_ms / 1000.0 - oldest)
                if deadline is not None and now >= deadline:
                    return []
                self._cond.wait(max(0.0, min(waits)) if waits else None)

    def flush(self) -> None:
        """Let every item queued now leave without waiting for ``max_queue_delay_ms`` (batches of up to
        ``max_batch``); items put later wait as usual."""
        with self._cond:
            self._flush = len(self._items)
            if self._flush:
                self._cond.notify_all()

    def close(self) -> None:
        """No more puts; queued items still come out (drain), then ``get_batch`` returns ``None``."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
