"""Daemon metrics: counters and per-stage latency windows (p50 / p99), resident memory."""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from collections.abc import Callable

from core.measures import percentile


def rss_mb() -> float:
    """Resident set size of this process (MiB), from /proc (0 where unavailable)."""
    try:
        with open("/proc/self/statm") as fh:
            pages = int(fh.read().split()[1])
    except (OSError, ValueError, IndexError):
        return 0.0
    import os

    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


class Metrics:
    """Thread-safe counters and the last ``window`` observations of each named quantity."""

    def __init__(self, window: int = 2000) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        self._obs: dict[str, deque[float]] = {}
        self._window = window
        self._t0 = time.monotonic()
        #: Also called with every observation (the Prometheus histograms, :mod:`edge.device.prom`).
        self.on_observe: Callable[[str, float], None] | None = None

    def count(self, name: str, n: int = 1) -> None:
        with self._lock:
            self._counts[name] += n

    def observe(self, name: str, value: float) -> None:
        with self._lock:
            self._obs.setdefault(name, deque(maxlen=self._window)).append(float(value))
        if self.on_observe is not None:
            self.on_observe(name, float(value))

    def counters(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)

    def values(self, name: str) -> list[float]:
        with self._lock:
            return list(self._obs.get(name, ()))

    def summary(self) -> dict[str, dict[str, float]]:
        with self._lock:
            items = {k: list(v) for k, v in self._obs.items() if v}
        return {k: {"p50": round(percentile(v, 50), 3), "p99": round(percentile(v, 99), 3), "n": len(v)}
                for k, v in items.items()}

    def uptime_s(self) -> float:
        return round(time.monotonic() - self._t0, 3)
