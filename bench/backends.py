"""Benchmark of the inference backends × precisions: ms per cell, quality against fp32, and the machine's ceilings.

For each generator config, in one process and on the same inputs: PyTorch eager fp32 one cell at a
time (the seed's method: the baseline of ``vs_seed_method``), PyTorch bf16 autocast (channels-last),
ONNX Runtime fp32 and int8 in both forms of :mod:`export.int8` (``onnxruntime-int8-qdq``: QDQ
s8/s8; ``onnxruntime-int8-qop``: QOperator u8 activations / s8 per-channel weights in 7 bits, what the
export ships; ``onnxruntime-int8-qop-8bit``: the same with full 8-bit weights), and OpenVINO fp32,
bf16 (only where the CPU has it natively; otherwise the row is listed under ``skipped`` with the
reason) and int8 (NNCF's ``mixed`` preset, :mod:`export.openvino_int8`); every int8 calibrated on 16
of the inputs; for ``shipped`` also the bundle's own OpenVINO int8 IR as it ships (``openvino-int8-bundle``,
calibrated at export on 64 training samples: its quality is read with ``--dataset`` only, ``gate`` null and a
``quality_note`` without); each at batch 1, 8 and 32. OpenVINO rows are timed as
the daemon runs its full batches: the model compiled for exactly the row's batch
(:meth:`~edge.device.backends.openvino.OpenVinoBackend.fix_batch`, a static input shape), the batch run as
``--streams`` equal parts at once on streams of their own where it divides the batch (``streams`` of the row);
``ms_per_cell_one_stream`` is the fixed model on one stream, ``ms_per_cell_any_batch`` the model compiled for
any batch. Every row carries ``ssim_vs_fp32``
(:func:`edge.device.manifest.ssim_gate`, the gate's SSIM) and ``max_abs_vs_fp32`` of its outputs against
PyTorch fp32 on the same 32 inputs, and ``gate`` (SSIM >= 0.995). The ceilings are matrix multiplies
measured in the same run (``N³``): torch fp32 and bf16, int8 on ONNX Runtime, on OpenVINO's own kernel
(timed by the plugin's counters) and in torch, in GFLOP/s (GOP/s); ``gflops`` of a row is the model's conv
FLOPs per cell divided by its time. ``--layers``: each OpenVINO row also says where its time goes
(``layers_ms_per_cell``, by node type and kernel) and the rate its convolutions alone reach (``conv_gflops``).

    python bench/backends.py [--json] [--configs shipped,default,seed] [--min-time 1.0]
                             [--bundle models/default.stainless] [--batches 1,8,32]
                             [--dataset out/default-model/data.zarr] [--streams 2] [--layers]

Configs: ``shipped`` = the generator of ``--bundle`` with its trained weights (read from the
bundle's fp32 ONNX); ``default`` = the trainer's NetworkConfig defaults (RRDB n_b=2, 32 features,
growth 16); ``seed`` = seed 000's generator (n_b=4, 64 features, growth 32). ``default`` and
``seed`` have random weights (no trained checkpoint of them is shipped: their quality columns say
how each precision treats these weights, not the trained model). Recipe full-nohe (132 channels),
64x64 patches, synthetic stacks as inputs; with ``--dataset`` the shipped model runs on 64 samples of
the dataset's test split instead and each row's ``gate`` is the export's whole gate
(:func:`export.gate.judge`: SSIM and ``nucleus_iou`` against the targets within 0.01 of
``nucleus_iou_fp32``).
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import onnx
import onnxruntime as ort
import torch
from numpy.typing import NDArray

from edge.device.backends import Backend, FixesBatch, layers_per_cell
from edge.device.backends.onnxruntime import OnnxRuntimeBackend, session_options
from edge.device.backends.openvino import (
    OpenVinoBackend,
    bf16_problem,
    compile_properties,
    cpu_capabilities,
    import_openvino,
    shared_core,
)
from edge.device.bundle import read_members
from edge.device.manifest import GATE_SSIM_MIN, MANIFEST_NAME, ssim_gate
from export.calibration import batches, dataset_stacks, synthetic_stacks
from export.gate import judge
from export.int8 import quantize_int8
from export.onnx_export import export_onnx
from export.openvino_int8 import quantize_openvino
from firmware_bridge.recipes import resolve_recipe
from firmware_bridge.rigs import get_profile
from trainer.checkpoint import generator_from_checkpoint, load_checkpoint
from trainer.errors import CheckpointError
from trainer.models import RRDBGenerator, count_flops

CONFIGS: dict[str, dict[str, Any]] = {
    "default": {"n_blocks": 2, "features": 32, "growth": 16},
    "seed": {"n_blocks": 4, "features": 64, "growth": 32},
}
PATCH = 64
N_INPUTS = 32
# Without --dataset the bundle's own int8 IR meets stacks it was not calibrated for: it was calibrated at export on
# training samples, and the synthetic stacks' channel levels (0.05-0.85 everywhere) lie far outside those ranges
# (SSIM vs fp32 0.34 on them, 0.998 on a dataset built like the default's), so its quality is not read there.
BUNDLE_NOTE = ("openvino-int8-bundle: calibrated at export on training samples, the synthetic stacks lie outside its "
               "int8 ranges; give --dataset for its quality")
Infer = Callable[[NDArray[np.float32]], NDArray[np.float32]]


def timed(fn: Callable[[], object], min_time: float, min_reps: int = 1) -> float:
    """Seconds per call: one warm-up call, then repeat until ``min_time`` has passed (the mean)."""
    fn()
    reps, t0 = 0, time.perf_counter()
    while reps < min_reps or time.perf_counter() - t0 < min_time:
        fn()
        reps += 1
    return (time.perf_counter() - t0) / reps


def _ort_int8_matmul(n: int) -> Callable[[], object]:
    """One ``n³`` u8 × s8 → s32 ``MatMulInteger`` on ONNX Runtime's CPU provider: the kernels its QOperator
    int8 models run (AVX-512 VNNI where the CPU has it)."""
    from onnx import TensorProto, helper

    io = [helper.make_tensor_value_info(name, kind, [n, n]) for name, kind in
          (("a", TensorProto.UINT8), ("b", TensorProto.INT8), ("y", TensorProto.INT32))]
    graph = helper.make_graph([helper.make_node("MatMulInteger", ["a", "b"], ["y"])], "int8", io[:2], io[2:])
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    proto.ir_version = 8
    session = ort.InferenceSession(proto.SerializeToString(), session_options(), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    feeds = {"a": rng.integers(0, 256, (n, n), dtype=np.uint8), "b": rng.integers(-128, 128, (n, n), dtype=np.int8)}
    return lambda: session.run(None, feeds)


def _openvino_int8_matmul_kernel(n: int, min_time: float) -> float | None:
    """GOP/s of the CPU plugin's own int8 kernel on an ``n³`` u8 × s8 matrix multiply (on AMX:
    ``brgemm_avx512_amx_I8``), timed by its profiling counters: the kernel alone, without quantising the
    float input; None where OpenVINO is not installed or made no int8 kernel of it."""
    try:
        ov = import_openvino()
    except ImportError:
        return None
    ops = importlib.import_module("openvino.opset13")
    a = ops.parameter([n, n], ov.Type.f32)
    lo, hi = ops.constant(np.float32(0)), ops.constant(np.float32(255))
    w = ops.constant(np.random.default_rng(0).integers(-127, 128, (n, n), dtype=np.int8))
    weights = ops.multiply(ops.convert(w, ov.Type.f32), ops.constant(np.full((n, 1), 0.01, np.float32)))
    model = ov.Model([ops.matmul(ops.fake_quantize(a, lo, hi, lo, hi, 256), weights, False, True)], [a])
    request = shared_core().compile_model(model, "CPU", compile_properties("int8") | {"PERF_COUNT": True}
                                      ).create_infer_request()
    x = np.random.default_rng(1).uniform(0, 255, (n, n)).astype(np.float32)
    request.infer({0: x})
    ms, reps, t0 = 0.0, 0, time.perf_counter()
    while reps < 3 or time.perf_counter() - t0 < min_time:
        request.infer({0: x})
        ms += sum(p.real_time.total_seconds() * 1e3 for p in request.profiling_info
                  if p.exec_type.endswith("_I8") and p.node_type != "Subgraph")
        reps += 1
    return round(2 * n**3 / (ms / reps / 1e3) / 1e9, 1) if ms > 0 else None


def matmul_ceilings(n: int = 1024, min_time: float = 1.0) -> dict[str, float | None]:
    """GFLOP/s (GOP/s for int8) of an ``n³`` matrix multiply: fp32 and bf16 in torch; int8 on ONNX Runtime
    (``MatMulInteger``, u8 × s8); ``int8_openvino``, the CPU plugin's int8 kernel alone
    (:func:`_openvino_int8_matmul_kernel`: on AMX the fastest int8 this machine does, and the rate the
    OpenVINO int8 rows' convolutions are held to); and ``int8_torch`` (``torch._int_mm``, None where it does
    not run), which on a CPU is no int8 ceiling: on an AMD EPYC with AVX-512 VNNI it ran below fp32 (27 vs
    46 GOP/s)."""
    g = torch.Generator().manual_seed(0)
    a, b = torch.rand(n, n, generator=g), torch.rand(n, n, generator=g)
    out: dict[str, float | None] = {}
    for name, (x, y) in {"fp32": (a, b), "bf16": (a.bfloat16(), b.bfloat16())}.items():
        out[name] = round(2 * n**3 / timed(lambda x=x, y=y: x @ y, min_time) / 1e9, 1)
    out["int8"] = round(2 * n**3 / timed(_ort_int8_matmul(n), min_time) / 1e9, 1)
    out["int8_openvino"] = _openvino_int8_matmul_kernel(n, min_time)
    try:
        qa, qb = (torch.randint(-128, 127, (n, n), dtype=torch.int8, generator=g) for _ in range(2))
        out["int8_torch"] = round(2 * n**3 / timed(lambda: torch._int_mm(qa, qb), min_time) / 1e9, 1)
    except (RuntimeError, AttributeError, NotImplementedError):
        out["int8_torch"] = None
    return out


def shipped_generator(bundle: Path) -> tuple[torch.nn.Module, bytes]:
    """The bundle's generator in torch with its trained weights, and its fp32 ONNX."""
    try:
        model = generator_from_checkpoint(load_checkpoint(bundle))
    except CheckpointError as exc:
        raise SystemExit(str(exc)) from exc
    return model, read_members(bundle)["model.fp32.onnx"]


class TorchBackend:
    """PyTorch eager on the CPU, fp32 or bf16 autocast (channels-last), as a :class:`Backend`."""

    def __init__(self, model: torch.nn.Module, bf16: bool) -> None:
        self.model = model.to(memory_format=torch.channels_last) if bf16 else model  # type: ignore[call-overload]
        self.bf16 = bf16
        self.name = "torch-bf16" if bf16 else "torch-eager-fp32"
        self.providers_loaded = ("torch:cpu",)

    def infer(self, x: NDArray[np.float32]) -> NDArray[np.float32]:
        t = torch.from_numpy(x)
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16):
            out = self.model(t.contiguous(memory_format=torch.channels_last) if self.bf16 else t)
        return out.float().numpy()

    def close(self) -> None:
        pass


def _outputs(infer: Infer, x: NDArray[np.float32], batch: int = 8) -> NDArray[np.float32]:
    return np.concatenate([infer(x[i:i + batch]) for i in range(0, len(x), batch)]).astype(np.float32)


def bundle_ir(bundle: Path) -> tuple[bytes, bytes] | None:
    """The bundle's OpenVINO int8 IR (xml, bin) as it ships, if it has one."""
    members = read_members(bundle)
    entry = json.loads(members[MANIFEST_NAME]).get("openvino", {}).get("int8")
    return (members[entry["model"]], members[entry["weights"]]) if entry else None


def variants(model: torch.nn.Module, proto: onnx.ModelProto, x: NDArray[np.float32],
             skipped: list[dict[str, str]], config: str, ir: tuple[bytes, bytes] | None = None
             ) -> dict[str, Backend]:
    """``name -> backend`` for every backend × precision that runs here; the rest into ``skipped``.
    ``ir``: the bundle's own OpenVINO int8 IR, a row of its own (``openvino-int8-bundle``)."""
    data = proto.SerializeToString()
    out: dict[str, Backend] = {"torch-bf16": TorchBackend(model, True),
                               "onnxruntime-fp32": OnnxRuntimeBackend(data, label=config)}
    calib = batches(x[:16], 8)
    for label, form, reduce in (("qdq", "qdq", False), ("qop", "qoperator", True), ("qop-8bit", "qoperator", False)):
        out[f"onnxruntime-int8-{label}"] = OnnxRuntimeBackend(
            quantize_int8(proto, calib, 17, form, reduce_range=reduce).SerializeToString(), label=config)
    out["openvino-fp32"] = OpenVinoBackend(data, label=config)
    why = bf16_problem(cpu_capabilities())
    if why is None:
        out["openvino-bf16"] = OpenVinoBackend(data, precision="bf16", label=config)
    else:
        skipped.append({"config": config, "backend": "openvino-bf16", "reason": why})
    xml, weights = quantize_openvino(data, x[:16])
    out["openvino-int8"] = OpenVinoBackend(xml, precision="int8", label=config, weights=weights)
    if ir is not None:
        out["openvino-int8-bundle"] = OpenVinoBackend(ir[0], precision="int8", label=f"{config} (bundle)",
                                                      weights=ir[1])
    return out


def _row(backend: str, config: str, batch: int, seconds: float, gflop: float, figures: dict[str, Any],
         weights: str) -> dict[str, Any]:
    ms = 1e3 * seconds / batch
    precision = next(p for p in ("int8", "bf16", "fp32") if p in backend)
    return {"backend": backend, "precision": precision, "config": config, "weights": weights,
            "batch": batch, "ms_per_cell": round(ms, 3), "gflops": round(gflop / (ms / 1e3), 2), **figures}


class SplitSamples(NamedTuple):
    """Samples of a dataset's test split for the shipped model: the full gate (SSIM and nucleus IoU)."""

    inputs: NDArray[np.float32]
    targets: NDArray[np.float32]
    pixel_size_um: float


def split_samples(dataset: Path, bundle: Path, n: int = 64) -> SplitSamples:
    """``n`` test-split samples of ``dataset`` (the export gate's pick: seed 0) in the bundle's recipe."""
    recipe = json.loads(read_members(bundle)[MANIFEST_NAME])["recipe"]
    x, y, px = dataset_stacks(dataset, {"recipe": {"id": recipe["id"], "channel_names": recipe["channels"]}}, n)
    return SplitSamples(x, y, px)


def quality(backend: str, got: NDArray[np.float32], ref: NDArray[np.float32],
            test: SplitSamples | None) -> dict[str, Any]:
    """A row's quality against fp32 on the same inputs; with ``test`` the export's whole gate
    (:func:`export.gate.judge`: nucleus IoU against the targets within 0.01 of fp32's), else SSIM alone."""
    out: dict[str, Any] = {"max_abs_vs_fp32": round(float(np.abs(got - ref).max()), 5)}
    if test is None:
        s = ssim_gate(got, ref, backend)
        return out | {"ssim_vs_fp32": round(s.ssim, 5), "gate": s.ssim >= GATE_SSIM_MIN}
    g = judge(backend, got, ref, test.targets, test.pixel_size_um)
    return out | {"ssim_vs_fp32": round(g.ssim, 5), "nucleus_iou": round(g.nucleus_iou, 4),
                  "nucleus_iou_fp32": round(g.nucleus_iou_fp32, 4), "gate": g.passed}


def layer_figures(runner: OpenVinoBackend, x: NDArray[np.float32], gflop: float) -> dict[str, Any]:
    """Where an OpenVINO row's time goes (:meth:`~edge.device.backends.openvino.OpenVinoBackend.layer_profile`
    on ``x``): ms per cell by node type and kernel, and the rate its convolutions reach (``gflop`` per cell
    over their time: every FLOP of the model is a convolution's)."""
    per_cell = layers_per_cell(runner, x)
    conv_ms = sum(v for k, v in per_cell.items() if k.startswith("Convolution"))
    return {"layers_ms_per_cell": per_cell, "conv_gflops": round(gflop / (conv_ms / 1e3), 1) if conv_ms else None}


def bench_config(name: str, model: torch.nn.Module, proto: onnx.ModelProto, weights: str, min_time: float,
                 sizes: tuple[int, ...], skipped: list[dict[str, str]],
                 test: SplitSamples | None = None, ir: tuple[bytes, bytes] | None = None,
                 layers: bool = False, streams: int = 2) -> list[dict[str, Any]]:
    in_channels = int(proto.graph.input[0].type.tensor_type.shape.dim[1].dim_value)
    gflop = count_flops(model, (in_channels, PATCH, PATCH))
    x = test.inputs if test is not None else synthetic_stacks(N_INPUTS, in_channels, PATCH)
    fp32 = TorchBackend(model, False).infer
    ref = _outputs(fp32, x)
    exact = quality("torch-eager-fp32", ref, ref, test)
    base = timed(lambda: fp32(x[:1]), min_time)
    rows = [_row("torch-eager-fp32", name, 1, base, gflop, exact, weights)]
    for backend, runner in variants(model, proto, x, skipped, name, ir).items():
        got = _outputs(runner.infer, x)
        q = quality(backend, got, ref, test)
        if backend == "openvino-int8-bundle" and test is None:
            q |= {"gate": None, "quality_note": BUNDLE_NOTE}
        for b in sizes:
            figures = dict(q)
            if isinstance(runner, FixesBatch):  # the any-batch model, one stream fixed, then as the daemon runs it
                any_batch = timed(lambda f=runner.infer, b=b: f(x[:b]), min_time)  # type: ignore[misc]
                figures["ms_per_cell_any_batch"] = round(1e3 * any_batch / b, 3)
                runner.fix_batch(b)
                parts = streams if b % streams == 0 else 1
                if parts > 1:
                    one = timed(lambda f=runner.infer, b=b: f(x[:b]), min_time)  # type: ignore[misc]
                    figures["ms_per_cell_one_stream"] = round(1e3 * one / b, 3)
                    runner.fix_batch(b, parts)
                figures["streams"] = parts
            seconds = timed(lambda f=runner.infer, b=b: f(x[:b]), min_time)  # type: ignore[misc]
            if layers and isinstance(runner, OpenVinoBackend):
                figures |= layer_figures(runner, x[:b], gflop)
            rows.append(_row(backend, name, b, seconds, gflop, figures, weights))
        runner.close()
    for r in rows:
        r["vs_seed_method"] = round(rows[0]["ms_per_cell"] / r["ms_per_cell"], 2)
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--configs", default="shipped,default,seed")
    ap.add_argument("--bundle", type=Path, default=Path("models/default.stainless"), help="for config 'shipped'")
    ap.add_argument("--batches", default="1,8,32")
    ap.add_argument("--min-time", type=float, default=1.0, help="seconds of timed repeats per row")
    ap.add_argument("--streams", type=int, default=2, help="OpenVINO rows: the batch run as this many equal parts "
                    "on streams of their own where it divides the batch, as the daemon's [batching] "
                    "fixed_batch_streams (the one-stream figure is kept beside it)")
    ap.add_argument("--layers", action="store_true", help="OpenVINO rows: where the time goes, by node type and "
                    "kernel (the plugin's profiling counters), and the rate the convolutions reach")
    ap.add_argument("--dataset", type=Path, help="for config 'shipped': its dataset (.zarr); the quality columns "
                    "come from 64 test-split samples with the whole gate (nucleus IoU too), as the export measures")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    sizes = tuple(int(b) for b in args.batches.split(","))
    in_channels = 3 * len(resolve_recipe("full-nohe", get_profile("thesis-43")))
    ceilings = matmul_ceilings(min_time=args.min_time)
    result: dict[str, Any] = {"gemm_gflops": ceilings["fp32"], "matmul_gflops": ceilings, "rows": [],
                              "skipped": [], "threads": torch.get_num_threads(),
                              "cpu_capabilities": list(cpu_capabilities())}
    for name in args.configs.split(","):
        torch.manual_seed(0)
        if name == "shipped":
            model, data = shipped_generator(args.bundle)
            proto, weights = onnx.load_from_string(data), f"trained ({args.bundle.name})"
        else:
            model = RRDBGenerator(in_channels, **CONFIGS[name]).eval()
            proto, weights = export_onnx(model, in_channels, PATCH), "random"
        test = split_samples(args.dataset, args.bundle) if name == "shipped" and args.dataset else None
        ir = bundle_ir(args.bundle) if name == "shipped" else None
        result["rows"] += bench_config(name, model, proto, weights, args.min_time, sizes, result["skipped"], test, ir,
                                       args.layers, max(args.streams, 1))
    if args.json:
        print(json.dumps(result, indent=1))
        return 0
    c = result["matmul_gflops"]
    print(f"matrix multiply ceilings (1024³, {result['threads']} threads): torch fp32 {c['fp32']} GFLOP/s, "
          f"bf16 {c['bf16']}; int8: OpenVINO's kernel {c['int8_openvino']} GOP/s, ONNX Runtime {c['int8']} "
          f"(torch {c['int8_torch']}); "
          f"CPU plugin: {result['cpu_capabilities']}")
    print(f"{'backend':<27}{'config':<9}{'batch':>6}{'ms/cell':>10}{'GFLOP/s':>9}{'x seed':>8}{'SSIM':>9}"
          f"{'max abs':>9}  gate")
    for r in result["rows"]:
        print(f"{r['backend']:<27}{r['config']:<9}{r['batch']:>6}{r['ms_per_cell']:>10.2f}{r['gflops']:>9.1f}"
              f"{r['vs_seed_method']:>8.2f}{r['ssim_vs_fp32']:>9.4f}{r['max_abs_vs_fp32']:>9.4f}  "
              f"{'n/a' if r['gate'] is None else 'pass' if r['gate'] else 'FAIL'}")
    for note in sorted({r["quality_note"] for r in result["rows"] if "quality_note" in r}):
        print(f"n/a: {note}")
    for r in result["rows"]:
        if "layers_ms_per_cell" in r:
            top = ", ".join(f"{k} {v:.2f}" for k, v in list(r["layers_ms_per_cell"].items())[:4])
            print(f"  {r['backend']} {r['config']} batch {r['batch']}: convolutions at {r['conv_gflops']} GOP/s; "
                  f"ms per cell: {top}")
    for s in result["skipped"]:
        print(f"skipped {s['backend']} ({s['config']}): {s['reason']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
