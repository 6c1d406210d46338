"""Backend selection as pure functions (no TensorRT here), and its wiring in open_model with a fake engine."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edge.device.backends.select import AUTO_CHAIN, Machine, select_backends
from edge.device.config import ModelConfig
from edge.device.errors import BackendUnavailableError, SelfTestError
from edge.device.model import open_model
from firmware_bridge.rigs import get_profile
from tests.edge.bundle_support import GOLDEN_BUNDLE, GOLDEN_PUB

CPU_ONLY = Machine(None, "TensorRT is not installed", ("CPUExecutionProvider",))
JETSON = Machine("10.3.0", "", ("CUDAExecutionProvider", "CPUExecutionProvider"))


def test_the_auto_chain_is_tensorrt_then_openvino_then_cuda_then_cpu() -> None:
    assert [name for name, _ in AUTO_CHAIN] == ["tensorrt", "openvino", "onnxruntime-cuda", "onnxruntime-cpu"]


def test_auto_on_a_cpu_machine_says_why_it_skipped_the_gpu_backends() -> None:
    sel = select_backends("auto", CPU_ONLY, bundle=True)
    assert sel.candidates == ("onnxruntime-cpu",)
    assert [n for n, _ in sel.skipped] == ["tensorrt", "openvino", "onnxruntime-cuda"]
    reason = sel.reason("onnxruntime-cpu")
    assert "tensorrt: TensorRT is not installed" in reason and "no CUDAExecutionProvider" in reason
    assert "openvino: OpenVINO is not installed" in reason


def test_auto_on_a_device_with_tensorrt_tries_it_first() -> None:
    sel = select_backends("auto", JETSON, bundle=True)
    assert sel.candidates == ("tensorrt", "onnxruntime-cuda", "onnxruntime-cpu")
    assert [n for n, _ in sel.skipped] == ["openvino"]
    assert sel.reason("tensorrt") == "tensorrt (first choice)"
    assert "golden" in sel.reason("onnxruntime-cuda", (("tensorrt", "engine fails the golden self-test"),))


def test_a_bare_onnx_never_gets_tensorrt() -> None:
    sel = select_backends("auto", JETSON, bundle=False)
    assert sel.candidates == ("onnxruntime-cuda", "onnxruntime-cpu")
    assert "bundle" in dict(sel.skipped)["tensorrt"]


def test_an_explicit_backend_never_falls_back() -> None:
    assert select_backends("tensorrt", JETSON, bundle=True).candidates == ("tensorrt",)
    assert select_backends("onnxruntime", JETSON, bundle=True).candidates == ("onnxruntime-cpu",)
    with pytest.raises(BackendUnavailableError, match="TensorRT is not installed"):
        select_backends("tensorrt", CPU_ONLY, bundle=True)
    with pytest.raises(BackendUnavailableError, match="CUDAExecutionProvider"):
        select_backends("onnxruntime-cuda", CPU_ONLY, bundle=True)
    with pytest.raises(BackendUnavailableError, match="valid: auto"):
        select_backends("openvino-gpu", JETSON, bundle=True)


def bundle_config(**kw: Any) -> ModelConfig:
    return ModelConfig(bundle=str(GOLDEN_BUNDLE), public_key=str(GOLDEN_PUB), **kw)


def test_open_model_on_a_cpu_only_machine_runs_onnxruntime_without_padding_and_says_why(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # a device without TensorRT and OpenVINO (what auto picks here depends on this machine's CPU and runtimes)
    monkeypatch.setattr("edge.device.model.probe_machine", lambda: CPU_ONLY)
    model = open_model(bundle_config(), get_profile("thesis-43"))
    try:
        assert model.backend.name == "onnxruntime-fp32" and model.batch_sizes == ()
        assert model.backend_reason.startswith("onnxruntime-cpu (skipped tensorrt: ")
    finally:
        model.close()


class FakeEngine:
    """Stands in for a TensorRT engine (TensorRT cannot run here): fixed profile sizes, like the real one."""

    name = "tensorrt"
    providers_loaded = ("TensorRT",)
    sizes = (1, 8, 32)

    def infer(self, x: np.ndarray) -> np.ndarray:
        return np.full((x.shape[0], 3, *x.shape[2:]), 0.5, np.float32)

    def close(self) -> None:
        pass


@pytest.mark.parametrize("engine_ok", [True, False])
def test_auto_reaches_tensorrt_where_it_exists(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                               engine_ok: bool) -> None:
    seen: dict[str, Any] = {}

    def fake_open_bundle_engine(manifest: Any, read: Any, precision: str, cache: Path, max_batch: Any = None) -> Any:
        seen.update(precision=precision, cache=cache, onnx=len(read(manifest.model("fp32").file)))
        if not engine_ok:
            raise SelfTestError("engine abc.engine fails the golden self-test: max |diff| 0.3")
        return FakeEngine(), None, None

    # a TensorRT device whose ONNX Runtime is a CPU build (so the CUDA step is skipped, not tried)
    monkeypatch.setattr("edge.device.model.probe_machine", lambda: Machine("10.3.0", "", ("CPUExecutionProvider",)))
    monkeypatch.setattr("edge.device.backends.tensorrt.open_bundle_engine", fake_open_bundle_engine)
    model = open_model(bundle_config(precision="fp16", engine_cache=str(tmp_path)), get_profile("thesis-43"))
    try:
        assert seen["precision"] == "fp16" and seen["cache"] == tmp_path and seen["onnx"] > 0
        if engine_ok:
            assert model.backend.name == "tensorrt" and model.backend_reason == "tensorrt (first choice)"
            assert model.batch_sizes == (1, 8, 32) and model.fallback is not None  # fp32 ONNX Runtime on the CPU
        else:  # CUDA is not loadable in this ONNX Runtime either: on to the CPU, with both reasons
            assert model.backend.name.startswith("onnxruntime") and model.batch_sizes == ()
            assert "golden self-test" in model.backend_reason and "onnxruntime-cuda" in model.backend_reason
    finally:
        model.close()
