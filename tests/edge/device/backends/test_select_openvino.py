"""OpenVINO in the auto chain: Intel CPUs only, explicit anywhere; opened for real on the golden bundle."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from edge.device.backends.select import Machine, cpu_vendor, probe_machine, select_backends
from edge.device.config import ModelConfig
from edge.device.model import open_model
from firmware_bridge.rigs import get_profile
from tests.edge.bundle_support import GOLDEN_BUNDLE, GOLDEN_PUB

INTEL = Machine(None, "TensorRT is not installed", ("CPUExecutionProvider",), openvino="2026.4.1",
                cpu_vendor="GenuineIntel")
AMD = Machine(None, "TensorRT is not installed", ("CPUExecutionProvider",), openvino="2026.4.1",
              cpu_vendor="AuthenticAMD")


def bundle_config(**kw: Any) -> ModelConfig:
    return ModelConfig(bundle=str(GOLDEN_BUNDLE), public_key=str(GOLDEN_PUB), **kw)


def test_auto_prefers_openvino_on_an_intel_cpu() -> None:
    sel = select_backends("auto", INTEL, bundle=True)
    assert sel.candidates == ("openvino", "onnxruntime-cpu")
    assert sel.reason("openvino").startswith("openvino (skipped tensorrt: TensorRT is not installed")


def test_auto_passes_openvino_over_on_other_cpus_and_says_why() -> None:
    sel = select_backends("auto", AMD, bundle=True)
    assert sel.candidates == ("onnxruntime-cpu",)
    assert "AuthenticAMD, not GenuineIntel" in dict(sel.skipped)["openvino"]
    assert "openvino: the CPU is AuthenticAMD" in sel.reason("onnxruntime-cpu")


def test_openvino_asked_for_explicitly_runs_on_any_cpu_but_needs_the_package() -> None:
    assert select_backends("openvino", AMD, bundle=False).candidates == ("openvino",)
    with pytest.raises(Exception, match="OpenVINO is not installed"):
        select_backends("openvino", Machine(), bundle=True)


def test_cpu_vendor_reads_proc_cpuinfo_text() -> None:
    assert cpu_vendor("processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Xeon\n") == "GenuineIntel"
    assert cpu_vendor("Processor\t: AArch64\n") == ""


def test_probe_machine_finds_the_installed_openvino_without_its_telemetry() -> None:
    import sys
    import threading

    from edge.device.backends.openvino import import_openvino

    before = set(threading.enumerate())
    version = probe_machine().openvino
    assert version is not None and version == import_openvino().__version__
    assert "openvino_telemetry" not in sys.modules and set(threading.enumerate()) <= before


def test_open_model_on_openvino_matches_onnxruntime_on_the_golden_bundle() -> None:
    ov = open_model(bundle_config(backend="openvino"), get_profile("thesis-43"))
    ort = open_model(bundle_config(backend="onnxruntime"), get_profile("thesis-43"))
    try:
        assert ov.backend.name == "openvino-fp32" and ov.backend_reason == "openvino (first choice)"
        x = np.random.default_rng(0).random((5, ov.spec.in_channels, ov.spec.patch_size, ov.spec.patch_size),
                                             dtype=np.float32)
        np.testing.assert_allclose(ov.backend.infer(x), ort.backend.infer(x), atol=1e-4)
    finally:
        ov.close()
        ort.close()


def test_auto_on_an_intel_machine_opens_openvino(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("edge.device.model.probe_machine", lambda: INTEL)
    model = open_model(bundle_config(), get_profile("thesis-43"))
    try:
        assert model.backend.name == "openvino-fp32"
        assert model.backend_reason.startswith("openvino (skipped tensorrt: ")
    finally:
        model.close()


def test_bf16_without_a_passed_gate_runs_fp32_on_openvino() -> None:
    # the golden bundle predates the quality gate: no record for openvino-bf16, so bf16 is not used
    model = open_model(bundle_config(backend="openvino", precision="bf16"), get_profile("thesis-43"))
    try:
        assert model.backend.name == "openvino-fp32"
    finally:
        model.close()
