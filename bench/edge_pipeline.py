"""Edge pipeline benchmark on the virtual bench, acquisition excluded.

Stacks are captured once through the emulated LED array and the simulated camera, then replayed
into the daemon's processing → batching → inference → fidelity → publishing path (the capture
stage returns the cached stack with fresh time stamps). In the same run the backend alone runs
the same cell inputs in batches of the pipeline's average size. Prints per-stage p50/p99 (ms),
cells/s and fields/s, the ratio pipeline / backend-alone, the end-of-capture → on-the-wire latency
against one batch of inference + 50 ms, and resident memory over the run.

    python bench/edge_pipeline.py [--fields 100] [--distinct 6] [--model PATH.onnx] [--json]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.measures import percentile
from edge.bench.daemon import open_bench_camera
from edge.client import Subscriber
from edge.device.acquisition import Acquirer
from edge.device.app import Pipeline, build_pipeline
from edge.device.cell_jobs import process_stack
from edge.device.config import EdgeConfig, config_from_dict
from edge.device.metrics import rss_mb
from edge.device.model import open_model
from edge.device.stack import FieldRequest, Stack
from firmware_bridge.client import open_led_array


def conv_model(path: Path, in_ch: int, patch: int, width: int = 48, depth: int = 4) -> Path:
    """A small fully convolutional model (3x3 convs + ReLU, sigmoid RGB), a stand-in for a generator."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    nodes, inits, prev, ch = [], [], "x", in_ch
    for i in range(depth):
        out = width if i < depth - 1 else 3
        w = (rng.standard_normal((out, ch, 3, 3)) * (2 / (9 * ch)) ** 0.5).astype(np.float32)
        inits += [numpy_helper.from_array(w, f"w{i}"), numpy_helper.from_array(np.zeros(out, np.float32), f"b{i}")]
        nodes.append(helper.make_node("Conv", [prev, f"w{i}", f"b{i}"], [f"c{i}"], pads=[1, 1, 1, 1]))
        act = "Relu" if i < depth - 1 else "Sigmoid"
        nodes.append(helper.make_node(act, [f"c{i}"], [f"a{i}" if i < depth - 1 else "y"]))
        prev, ch = f"a{i}", out
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["b", in_ch, patch, patch])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["b", 3, patch, patch])
    graph = helper.make_graph(nodes, "bench", [x], [y], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


class CachedStacks:
    """A stack source replaying a few captured stacks with fresh time stamps (acquisition excluded)."""

    def __init__(self, cache: list[Stack]) -> None:
        self.cache = cache

    def capture(self, request: FieldRequest) -> Stack:
        s = self.cache[request.field_id % len(self.cache)]
        now = time.time()
        return Stack(request, s.pixels, s.planes, s.colours, s.pixel_um, s.black_level, s.max_adu, now, now)


def bench_config(model: Path, patch: int, max_batch: int) -> EdgeConfig:
    """The virtual bench (thesis-43, 256² fields), the stand-in model, random loopback ports."""
    return config_from_dict({
        "daemon": {"id": "bench", "status_interval_s": 0.2}, "led": {"url": "sim://thesis-43"},
        "virtual_bench": {"field_size_px": [256, 256], "seed": 1, "wbc_per_mm2": 600.0},
        "acquisition": {"mode": "host"},
        "batching": {"max_batch": max_batch, "max_queue_delay_ms": 20.0, "queue_size": 256},
        "model": {"onnx": str(model), "patch_size": patch, "threads": 0},
        "publisher": {"endpoint": "tcp://127.0.0.1:*", "linger_ms": 0}, "control": {"endpoint": "tcp://127.0.0.1:*"}})


def run(fields: int, distinct: int, model: Path, patch: int, max_batch: int) -> dict[str, Any]:
    cfg = bench_config(model, patch, max_batch)
    with contextlib.ExitStack() as parts:
        led = open_led_array(cfg.led.url)
        parts.callback(led.close)
        camera = open_bench_camera(cfg, led)
        parts.callback(camera.close)
        loaded = open_model(cfg.model, led.geometry())
        parts.callback(loaded.close)
        acquirer = Acquirer(led, camera, loaded.spec.recipe, cfg.acquisition, cfg.camera.timeout_s)
        cache = [acquirer.capture(FieldRequest("bench", i, (0.0, 0.0))) for i in range(distinct)]
        pipe = build_pipeline(cfg, led=led, camera=camera, model=loaded, stack_source=CachedStacks(cache))
        return _measure(pipe, cfg, cache, fields)


def _measure(pipe: Pipeline, cfg: EdgeConfig, cache: list[Stack], fields: int) -> dict[str, Any]:
    try:
        pipe.start()
        received, stop = [0], threading.Event()
        sub = Subscriber(pipe.publisher.endpoint, topics=("cell",))
        assert pipe.publisher.wait_for_subscribers(1, 5.0)

        def drain() -> None:
            while not stop.is_set():
                if sub.receive(0.1) is not None:
                    received[0] += 1

        reader = threading.Thread(target=drain, name="bench-sub")
        reader.start()
        rss: list[float] = []
        t0 = time.perf_counter()
        pipe.submit([FieldRequest("bench", i, (0.0, 0.0)) for i in range(fields)])
        while not pipe.wait_idle(0.5):
            rss.append(rss_mb())
        wall = time.perf_counter() - t0
        rss.append(rss_mb())
        sent = pipe.status()["counters"].get("cells_sent", 0)
        deadline = time.monotonic() + 5.0
        while received[0] < sent and time.monotonic() < deadline:
            reader.join(0.05)
        stop.set()
        reader.join()
        sub.close()
        status = pipe.status()
        # the backend alone on the same inputs, in batches of the pipeline's average size
        jobs = [j for s in cache for j in process_stack(s, cfg.qc, cfg.detector, cfg.crops, pipe.spec.patch_size,
                                                        pipe.norm).jobs]
        cells_total = status["counters"].get("cells_sent", 0) + status["counters"].get("cells_not_sent", 0)
        avg = max(1, round(status["batching"]["avg_batch_size"]))
        x = np.stack([j.x for j in jobs])
        reps = max(1, cells_total // len(jobs))
        t1 = time.perf_counter()
        n = 0
        for _ in range(reps):
            for i in range(0, len(x), avg):
                pipe.runner.backend.infer(x[i:i + avg])
                n += len(x[i:i + avg])
        backend_s = time.perf_counter() - t1
        inf = pipe.metrics.values("inference_ms")
        e2e = pipe.metrics.values("end_to_sent_ms")
    finally:
        pipe.shutdown()
    lat = status["latency_ms"]
    warm = rss[len(rss) // 5]
    return {
        "fields": fields, "cells": cells_total, "cells_received": received[0], "wall_s": round(wall, 3),
        "fields_per_s": round(fields / wall, 3), "cells_per_s": round(cells_total / wall, 2),
        "backend_alone_cells_per_s": round(n / backend_s, 2),
        "ratio_pipeline_to_backend": round((cells_total / wall) / (n / backend_s), 3),
        "avg_batch_size": status["batching"]["avg_batch_size"],
        "stages_ms": {k: {"p50": v["p50"], "p99": v["p99"]} for k, v in lat.items()},
        "capture_end_to_sent_p50_ms": round(percentile(e2e, 50), 2),
        "capture_end_to_sent_p99_ms": round(percentile(e2e, 99), 2),
        "one_batch_inference_p50_ms": round(percentile(inf, 50), 2),
        "latency_budget_ms": round(percentile(inf, 50) + 50.0, 2),
        "rss_mb": [round(r, 1) for r in rss], "rss_drift_after_warmup": round((rss[-1] - warm) / warm, 4),
        "dropped": status["publisher"]["dropped"],
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--fields", type=int, default=100)
    ap.add_argument("--distinct", type=int, default=6, help="distinct simulated fields captured and replayed")
    ap.add_argument("--model", type=Path, help="an ONNX taking (B, 132, P, P); default: a small conv net")
    ap.add_argument("--patch", type=int, default=64)
    ap.add_argument("--max-batch", type=int, default=8)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        model = args.model or conv_model(Path(tmp) / "bench.onnx", 132, args.patch)
        res = run(args.fields, args.distinct, model, args.patch, args.max_batch)
    if args.json:
        print(json.dumps(res))
    else:
        for k, v in res.items():
            if k == "stages_ms":
                for s, q in v.items():
                    print(f"  {s:24s} p50 {q['p50']:10.2f} ms   p99 {q['p99']:10.2f} ms")
            else:
                print(f"{k}: {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
