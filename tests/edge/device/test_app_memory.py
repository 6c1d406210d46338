"""What the running daemon keeps alive: a field in flight holds its cells' inputs, not its whole stack."""

from __future__ import annotations

import gc
import threading
import time
import weakref
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import edge.device.app as app_module
from edge.bench.daemon import build_bench_pipeline
from edge.device.cell_jobs import FieldResult
from edge.device.config import BatchingConfig
from edge.device.stack import FieldRequest
from tests.edge.conftest import bench_config


class GatedBackend:
    """Delegates to ``inner`` once ``gate`` is set; until then the inference thread waits in ``infer``."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.gate = threading.Event()
        self.holding = 0  # cells of the batch waiting at the gate

    name = property(lambda self: self.inner.name)
    providers_loaded = property(lambda self: self.inner.providers_loaded)

    def infer(self, x: Any) -> Any:
        self.holding = len(x)
        if not self.gate.wait(30.0):
            raise TimeoutError("the test never opened the gate")
        self.holding = 0
        return self.inner.infer(x)

    def close(self) -> None:
        self.inner.close()


def poll(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout} s")
        time.sleep(0.01)


@pytest.mark.timeout(120)
def test_fields_waiting_for_the_model_do_not_keep_their_stacks(tiny_model: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """With the model held up, every processed field's cells wait in the batcher; their stacks (17 MB each
    on a 256² thesis-43 field) must be free by then, or memory grows with every field in flight."""
    results: list[FieldResult] = []
    stacks: list[weakref.ref[Any]] = []
    process = app_module.process_stack

    def recording(stack: Any, *args: Any, **kwargs: Any) -> FieldResult:
        results.append(process(stack, *args, **kwargs))
        stacks.append(weakref.ref(stack.pixels))
        return results[-1]

    monkeypatch.setattr(app_module, "process_stack", recording)
    cfg = bench_config(tiny_model, batching=BatchingConfig(max_batch=2, max_queue_delay_ms=5.0, queue_size=64))
    pipe = build_bench_pipeline(cfg)
    gated = GatedBackend(pipe.runner.backend)
    pipe.runner.backend = gated
    fields = 6
    try:
        pipe.start()
        pipe.submit([FieldRequest("s1", f, (100.0 * f, 0.0)) for f in range(fields)])
        poll(lambda: len(results) == fields and pipe.queue_depths()["stacks"] == 0
             and len(pipe.batcher) + gated.holding == sum(len(r.jobs) for r in results),
             60.0, "every field processed and its cells queued")
        waiting = [r for r in results if r.jobs]
        assert len(waiting) >= 3, "too few fields with cells to show anything"
        gc.collect()
        alive = [i for i, ref in enumerate(stacks) if ref() is not None]
        # at most the newest: the acquisition thread names it until its next capture, and the processing
        # thread may not have let it go yet; before, every field waiting for the model kept its stack
        assert len(alive) <= 1 and set(alive) <= {fields - 1}, \
            f"the stacks of fields {alive} are still alive while their cells wait for the model"
        for r in waiting:  # the context the headers need is kept
            assert r.stack.shape == (128, 128) and r.stack.planes and r.stack.t_capture_end > 0
            assert all(j.raw.shape[0] == 0 and j.scatter.shape == (j.raw.shape[-1],) * 2 for j in r.jobs)
        gated.gate.set()
        assert pipe.wait_idle(60.0)
        assert pipe.status()["counters"]["cells_sent"] == sum(len(r.jobs) for r in results)
    finally:
        gated.gate.set()
        pipe.shutdown()


class RecordingStainer:
    """A whole-field stainer that only records the stacks it is given."""

    def __init__(self) -> None:
        self.planes: list[int] = []

    def stain(self, pixels: Any) -> tuple[Any, dict[str, float]]:
        self.planes.append(int(pixels.shape[0]))
        return np.zeros((*pixels.shape[-2:], 3), np.uint8), {"ms": 0.0}

    def close(self) -> None:
        pass


@pytest.mark.timeout(120)
def test_whole_field_staining_still_gets_the_whole_stack(tiny_model: Path) -> None:
    """The one reader of a field's pixels after its cells are queued: the whole-field stain, at the field's end."""
    pipe = build_bench_pipeline(bench_config(tiny_model))
    stainer = RecordingStainer()
    pipe.field_stainer = stainer  # type: ignore[assignment]
    try:
        pipe.start()
        pipe.submit([FieldRequest("s1", f, (100.0 * f, 0.0)) for f in range(3)])
        assert pipe.wait_idle(60.0)
        planes = len(pipe.spec.recipe.channels)
        assert stainer.planes and all(n > 0 for n in stainer.planes)
        assert len(stainer.planes) == pipe.status()["counters"].get("fields_ok", 0) and planes > 0
    finally:
        pipe.shutdown()
