"""``bench/backends.py --json``: rows per backend × precision × batch with quality vs fp32, and the ceilings."""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType

import pytest

from tests.support.scripts import load_script

ROOT = Path(__file__).resolve().parents[2]


def bench() -> ModuleType:
    module = load_script("bench/backends.py")
    return module


def test_the_shipped_generator_gets_its_trained_weights_from_the_bundle() -> None:
    import numpy as np
    import torch

    from edge.device.backends.onnxruntime import OnnxRuntimeBackend

    model, onnx_bytes = bench().shipped_generator(ROOT / "models" / "default.stainless")
    x = np.random.default_rng(0).random((2, 132, 64, 64), dtype=np.float32)
    with torch.no_grad():
        want = model(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(OnnxRuntimeBackend(onnx_bytes).infer(x), want, atol=1e-4)


@pytest.mark.slow  # quantises and times the shipped model on four backends (~30 s on a loaded machine)
def test_json_has_every_backend_with_quality_and_the_ceilings(capsys: pytest.CaptureFixture[str]) -> None:
    assert bench().main(["--configs", "shipped", "--batches", "1,8", "--min-time", "0.01", "--layers", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out["matmul_gflops"]) == {"fp32", "bf16", "int8", "int8_openvino", "int8_torch"}
    assert out["gemm_gflops"] > 0 and out["matmul_gflops"]["int8"] > 0 and out["matmul_gflops"]["int8_openvino"] > 0
    backends = {r["backend"] for r in out["rows"]} | {s["backend"] for s in out["skipped"]}
    assert backends == {"torch-eager-fp32", "torch-bf16", "onnxruntime-fp32", "onnxruntime-int8-qdq",
                        "onnxruntime-int8-qop", "onnxruntime-int8-qop-8bit", "openvino-fp32", "openvino-bf16",
                        "openvino-int8", "openvino-int8-bundle"}
    rows = {(r["backend"], r["batch"]): r for r in out["rows"]}
    assert rows["onnxruntime-fp32", 8]["ssim_vs_fp32"] > 0.999 and rows["openvino-fp32", 1]["max_abs_vs_fp32"] < 1e-3
    assert {r["precision"] for r in out["rows"] if "int8" in r["backend"]} == {"int8"}
    fixed = {r["backend"] for r in out["rows"] if "ms_per_cell_any_batch" in r}  # timed fixed, and any-batch too
    assert fixed == {r["backend"] for r in out["rows"] if r["backend"].startswith("openvino")}
    assert all(r["ms_per_cell_any_batch"] > 0 for r in out["rows"] if r["backend"] in fixed)
    assert {(r["batch"], r["streams"]) for r in out["rows"] if r["backend"] in fixed} == {(1, 1), (8, 2)}
    assert all(r["ms_per_cell_one_stream"] > 0 for r in out["rows"] if r["backend"] in fixed and r["batch"] == 8)
    profiled = {r["backend"] for r in out["rows"] if r.get("conv_gflops")}  # --layers: OpenVINO rows only
    assert profiled == fixed
    int8 = rows["openvino-int8-bundle", 8]["layers_ms_per_cell"]
    assert any(k.startswith("Convolution") and "I8" in k for k in int8)  # the bundle's convolutions run in int8
    assert sum(int8.values()) < 3 * rows["openvino-int8-bundle", 8]["ms_per_cell"]
    assert all(r["weights"].startswith("trained") and r["vs_seed_method"] > 0 for r in out["rows"])
    # the bundle's IR was calibrated on training samples, not on the synthetic stacks: no verdict on them
    assert all(r["gate"] is None and "--dataset" in r["quality_note"] for (b, _), r in rows.items()
               if b == "openvino-int8-bundle")
    assert all(isinstance(r["gate"], bool) for (b, _), r in rows.items() if b != "openvino-int8-bundle")


def test_with_a_test_split_the_quality_is_the_whole_gate() -> None:
    import numpy as np

    b = bench()
    rng = np.random.default_rng(0)
    targets = rng.random((4, 3, 64, 64), dtype=np.float32)
    ref = np.clip(targets + rng.normal(0, 0.02, targets.shape), 0, 1).astype(np.float32)
    test = b.SplitSamples(np.zeros((4, 132, 64, 64), np.float32), targets, 0.293)
    same = b.quality("x", ref, ref, test)
    assert same["gate"] and same["ssim_vs_fp32"] == 1.0 and same["nucleus_iou"] == same["nucleus_iou_fp32"]
    off = b.quality("x", np.clip(ref + 0.2, 0, 1).astype(np.float32), ref, test)
    assert not off["gate"] and off["max_abs_vs_fp32"] > 0.1
    assert "nucleus_iou" not in b.quality("x", ref, ref, None)
