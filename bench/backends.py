"""Benchmark of the inference backends: ms per cell and achieved GFLOP/s against this machine's GEMM.

In one process, for each generator config: ONNX Runtime (CPU, fp32) at batch 1, 8 and 32, ONNX
Runtime int8 (QDQ, calibrated on synthetic stacks) at batch 8, and PyTorch eager one cell at a time
(the seed's method). The baseline is a float32 matrix multiply measured in the same run
(``gemm_gflops``); ``gflops`` of a row is the model's conv FLOPs per cell divided by its time, so
``gflops / gemm_gflops`` says how close a backend runs to the arithmetic floor. Where TensorRT is
installed, fp16 engines add rows (``--tensorrt``).

    python bench/backends.py [--json] [--configs default,seed] [--min-time 1.0]

Configs: ``default`` = the trainer's NetworkConfig defaults (RRDB n_b=2, 32 features, growth 16);
``seed`` = seed 000's generator (RRDB n_b=4, 64 features, growth 32). Both on recipe full-nohe
(44 images × 3 colours = 132 channels) and 64x64 patches. Weights are random (speed does not depend
on them). Default run: under ~3 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from edge.device.backends.onnxruntime import OnnxRuntimeBackend
from export.calibration import batches, synthetic_stacks
from export.int8 import quantize_int8
from export.onnx_export import export_onnx
from firmware_bridge.recipes import resolve_recipe
from firmware_bridge.rigs import get_profile
from trainer.models import RRDBGenerator, count_flops

CONFIGS: dict[str, dict[str, Any]] = {
    "default": {"n_blocks": 2, "features": 32, "growth": 16},
    "seed": {"n_blocks": 4, "features": 64, "growth": 32},
}
PATCH = 64


def timed(fn: Callable[[], object], min_time: float, min_reps: int = 1) -> float:
    """Seconds per call: one warm-up call, then repeat until ``min_time`` has passed (the mean)."""
    fn()
    reps, t0 = 0, time.perf_counter()
    while reps < min_reps or time.perf_counter() - t0 < min_time:
        fn()
        reps += 1
    return (time.perf_counter() - t0) / reps


def gemm_gflops(n: int = 2048, min_time: float = 1.0) -> float:
    a = np.random.default_rng(0).random((n, n), dtype=np.float32)
    b = np.random.default_rng(1).random((n, n), dtype=np.float32)
    return 2 * n**3 / timed(lambda: a @ b, min_time) / 1e9


def _call(fn: Callable[[np.ndarray], object], arg: np.ndarray) -> Callable[[], object]:
    return lambda: fn(arg)


def _row(backend: str, config: str, batch: int, seconds_per_call: float, gflop: float) -> dict[str, Any]:
    ms = 1e3 * seconds_per_call / batch
    return {"backend": backend, "config": config, "batch": batch, "ms_per_cell": round(ms, 3),
            "gflops": round(gflop / (ms / 1e3), 2)}


def bench_config(name: str, in_channels: int, min_time: float, int8: bool, tensorrt: bool) -> list[dict[str, Any]]:
    torch.manual_seed(0)
    model = RRDBGenerator(in_channels, **CONFIGS[name]).eval()
    gflop = count_flops(model, (in_channels, PATCH, PATCH))
    x = synthetic_stacks(32, in_channels, PATCH)
    rows = []
    with torch.no_grad():
        one = torch.from_numpy(x[:1])
        rows.append(_row("torch-eager", name, 1, timed(lambda: model(one), min_time), gflop))
    proto = export_onnx(model, in_channels, PATCH)
    ort = OnnxRuntimeBackend(proto.SerializeToString(), label=name)
    for b in (1, 8, 32):
        rows.append(_row("onnxruntime", name, b, timed(_call(ort.infer, x[:b]), min_time), gflop))
    ort.close()
    if int8:
        q = OnnxRuntimeBackend(quantize_int8(proto, batches(x[:16], 8), 17).SerializeToString(), label=name)
        rows.append(_row("onnxruntime-int8", name, 8, timed(lambda: q.infer(x[:8]), min_time), gflop))
        q.close()
    if tensorrt:
        rows += _tensorrt_rows(name, proto, x, min_time, gflop)
    return rows


def _tensorrt_rows(name: str, proto: Any, x: np.ndarray, min_time: float, gflop: float) -> list[dict[str, Any]]:
    """fp16 engines (device only; needs TensorRT and pycuda)."""
    import hashlib
    import tempfile
    from pathlib import Path

    from edge.device.backends import tensorrt as t

    trt = t.require_tensorrt()
    strongly = t.parse_version(trt.__version__) >= (11,)
    if strongly:
        from export.fp16 import to_fp16

        proto = to_fp16(proto, batches(x[:16], 8), 17).model
    plan = t.EnginePlan("fp16", "model.onnx", strongly, () if strongly else ("FP16",), (), (1, 8, 32))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.onnx"
        data = proto.SerializeToString()
        path.write_bytes(data)
        engine = t.build_engine(path, plan, x.shape[1:], "stack", Path(tmp), hashlib.sha256(data).hexdigest())
        backend = t.TensorRTBackend(engine, plan.sizes)
        rows = [_row("tensorrt-fp16", name, b, timed(_call(backend.infer, x[:b]), min_time), gflop)
                for b in (1, 8, 32)]
        backend.close()
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--configs", default="default,seed")
    ap.add_argument("--recipe", default="full-nohe")
    ap.add_argument("--min-time", type=float, default=1.0, help="seconds of timed repeats per row")
    ap.add_argument("--no-int8", action="store_true")
    ap.add_argument("--tensorrt", action="store_true", help="add fp16 TensorRT engine rows (device only)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    in_channels = 3 * len(resolve_recipe(args.recipe, get_profile("thesis-43")))
    result: dict[str, Any] = {"gemm_gflops": round(gemm_gflops(min_time=args.min_time), 2), "rows": []}
    for name in args.configs.split(","):
        result["rows"] += bench_config(name, in_channels, args.min_time, not args.no_int8, args.tensorrt)
    result["threads"] = torch.get_num_threads()
    if args.json:
        print(json.dumps(result, indent=1))
        return 0
    print(f"matrix multiply (float32, 2048²): {result['gemm_gflops']:.1f} GFLOP/s  ({result['threads']} threads)")
    print(f"{'backend':<18}{'config':<9}{'batch':>6}{'ms/cell':>10}{'GFLOP/s':>9}{'of GEMM':>9}")
    for r in result["rows"]:
        print(f"{r['backend']:<18}{r['config']:<9}{r['batch']:>6}{r['ms_per_cell']:>10.2f}{r['gflops']:>9.1f}"
              f"{r['gflops'] / result['gemm_gflops']:>9.0%}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
