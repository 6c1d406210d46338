"""Where the inference and publishing threads' time goes, per batch (the inference-thread table of issue 19).

Runs the pipeline bench (:func:`edge.bench.pipeline.run`: the virtual bench's fields replayed through
processing → batching → inference → publishing, a subscriber on loopback) with timers wrapped around
the functions each thread calls, and reports per batch, for each part, this thread's CPU time
(``time.thread_time``) and wall time. On the inference thread ``model`` is the backend call with its
output check (:func:`edge.device.flash.run_checked`; its CPU time counts only the calling thread, not
ONNX Runtime's pool) and ``around the model`` everything else between taking a batch and handing it
on (giving the batch buffer back, styles, the hand-over to the publishing thread, not counting the
wait when that queue is full: ``hand-over wait``). On the publishing thread: fidelity, headers and
payloads, publishing (wire encoding, spool when configured, the non-blocking send) and bookkeeping.
Wall times include waiting for the cores (2 cores shared with the processing thread and ONNX Runtime's
pool, and with neighbours on a shared machine): compare the CPU columns.

    python bench/infer_thread.py [--bundle models/default.stainless] [--precision fp32] [--fields 100] [--json]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edge.bench.pipeline import BenchModel, run
from edge.device import app, headers
from edge.device.publisher import Publisher
from edge.device.spool import Spool

#: label -> (owner, attribute, thread) timed where the daemon's code calls it.
PARTS: dict[str, tuple[Any, str, str]] = {
    "inference: batch (model and around it)": (app.Pipeline, "_infer_batch", "infer"),
    "inference: model (run_checked)": (app, "run_checked", "infer"),
    "inference: hand-over wait": (app.Pipeline, "_put", "infer"),
    "publishing: batch": (app.Pipeline, "_publish_batch", "publish"),
    "publishing: fidelity score": (app, "score_batch", "publish"),
    "publishing: cell header": (headers, "cell_header", "publish"),
    "publishing: rgb8 payloads": (app, "rgb8_hwc", "publish"),
    "publishing: encode, spool, send": (Publisher, "publish_many", "publish"),
    "publishing: spool (in the above)": (Spool, "append_many", "publish"),
}


@contextlib.contextmanager
def timed(cpu: dict[str, float], wall: dict[str, float], calls: dict[str, int]) -> Iterator[None]:
    """Wrap every part with a thread-CPU and a wall timer for the duration; restore them after."""
    saved = [(owner, name, getattr(owner, name)) for owner, name, _ in PARTS.values()]

    def timer(label: str, fn: Callable[..., Any], thread: str) -> Callable[..., Any]:
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            if not threading.current_thread().name.endswith(thread):  # e.g. _put also serves acquisition
                return fn(*args, **kwargs)
            c, w = time.thread_time(), time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                cpu[label] = cpu.get(label, 0.0) + time.thread_time() - c
                wall[label] = wall.get(label, 0.0) + time.perf_counter() - w
                calls[label] = calls.get(label, 0) + 1
        return wrapped

    try:
        for label, (owner, name, thread) in PARTS.items():
            setattr(owner, name, timer(label, getattr(owner, name), thread))
        yield
    finally:
        for owner, name, fn in saved:
            setattr(owner, name, fn)


def measure(model: BenchModel, fields: int) -> dict[str, Any]:
    cpu: dict[str, float] = {}
    wall: dict[str, float] = {}
    calls: dict[str, int] = {}
    with timed(cpu, wall, calls):
        res = run(model, fields)  # both phases: saturated, then paced
    batches = max(calls.get("inference: batch (model and around it)", 0), 1)
    whole, model_ = "inference: batch (model and around it)", "inference: model (run_checked)"
    cpu["inference: around the model"] = cpu.get(whole, 0.0) - cpu.get(model_, 0.0)
    wall["inference: around the model"] = wall.get(whole, 0.0) - wall.get(model_, 0.0)
    rows = {k: {"cpu_ms_per_batch": round(cpu[k] / batches * 1e3, 3),
                "wall_ms_per_batch": round(wall[k] / batches * 1e3, 3)} for k in sorted(cpu)}
    cells = calls.get("publishing: cell header", 0)
    return {"batches": batches, "cells": cells, "avg_batch_size": round(cells / batches, 2),
            "ratio_pipeline_to_backend": res["ratio_pipeline_to_backend"], "backend": res["backend"]["name"],
            "parts": rows}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bundle", default="models/default.stainless")
    ap.add_argument("--precision", default="fp32", choices=("fp32", "fp16", "int8", "bf16"))
    ap.add_argument("--fields", type=int, default=100)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    res = measure(BenchModel(bundle=args.bundle, precision=args.precision), args.fields)
    if args.json:
        print(json.dumps(res))
    else:
        print(f"{res['batches']} batches, {res['cells']} cells (avg batch {res['avg_batch_size']}) on "
              f"{res['backend']}; pipeline / backend alone {res['ratio_pipeline_to_backend']}")
        for k, v in res["parts"].items():
            print(f"  {k:44s} CPU {v['cpu_ms_per_batch']:8.2f} ms   wall {v['wall_ms_per_batch']:8.2f} ms per batch")
    return 0


if __name__ == "__main__":
    sys.exit(main())
