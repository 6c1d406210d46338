"""The pipeline bench's pure parts: where resident memory is read, fresh stacks per capture."""

from __future__ import annotations

import threading

import numpy as np

from edge.bench.pipeline import BatchClock, CachedStacks, rss_at_fields, rss_slope
from edge.device.stack import FieldRequest, Stack


def test_rss_is_read_at_a_tenth_a_fifth_half_and_the_end_of_the_run() -> None:
    samples = [(0, 500.0), (30, 600.0), (50, 610.0), (120, 640.0), (260, 650.0), (480, 651.0), (500, 652.0)]
    assert rss_at_fields(samples, 500) == {"50": 610.0, "100": 640.0, "250": 650.0, "500": 652.0}
    assert rss_at_fields([(3, 500.0)], 100) == {"10": 500.0, "20": 500.0, "50": 500.0, "100": 500.0}  # last sample
    assert rss_at_fields([], 100)["100"] == 0.0
    assert rss_at_fields([(1, 400.0), (2, 410.0)], 2) == {"1": 400.0, "2": 410.0}  # no field 0 for short runs


def test_rss_slope_ignores_the_first_fifth() -> None:
    flat_after_warmup = [(20, 100.0), (40, 200.0), (60, 200.0), (80, 200.0), (100, 200.0)]
    assert rss_slope(flat_after_warmup) == 0.0
    assert rss_slope([(f, 100.0 + f / 10) for f in range(20, 220, 20)]) == 10.0
    assert rss_slope([(200, 900.0), (400, 950.0)]) is None  # two scans: no slope rather than a flat 0.0
    assert rss_slope([]) is None


def test_fresh_stacks_are_new_arrays_with_the_cached_pixels() -> None:
    px = np.arange(2 * 3 * 4 * 4, dtype=np.uint16).reshape(2, 3, 4, 4)
    cached = Stack(FieldRequest("b", 0, (0.0, 0.0)), px, (), ("r", "g", "b"), 1.0, 0.0, 4095, 0.0, 0.0)
    shared, fresh = CachedStacks([cached]), CachedStacks([cached], fresh=True)
    a, b = shared.capture(FieldRequest("b", 1, (0.0, 0.0))), fresh.capture(FieldRequest("b", 1, (0.0, 0.0)))
    assert a.pixels is px and b.pixels is not px and not np.shares_memory(b.pixels, px)
    assert np.array_equal(b.pixels, px) and b.request.field_id == 1


class _Backend:
    def infer(self, x: np.ndarray) -> np.ndarray:
        return x[:, :3]


def test_the_batch_clock_times_the_daemons_inference_thread_only() -> None:
    backend = _Backend()
    clock = BatchClock(backend)  # type: ignore[arg-type]
    x = np.zeros((5, 4, 2, 2), np.float32)
    assert backend.infer(x).shape == (5, 3, 2, 2) and clock.batches == []  # the backend-alone arm: not recorded
    t = threading.Thread(target=backend.infer, args=(x,), name="edge-infer")
    t.start()
    t.join()
    assert len(clock.batches) == 1 and clock.batches[0].cells == 5
    assert clock.batches[0].start <= clock.batches[0].end
    clock.close()
    assert backend.infer.__func__ is _Backend.infer  # type: ignore[attr-defined]
