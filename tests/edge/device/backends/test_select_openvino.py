"""OpenVINO in the auto chain: Intel CPUs, elsewhere only for a gated bf16, explicit anywhere; opened for real."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edge.device.backends.openvino import bf16_problem, cpu_capabilities
from edge.device.backends.select import Machine, cpu_vendor, precision_note, probe_machine, select_backends
from edge.device.config import ModelConfig
from edge.device.model import open_model
from firmware_bridge.rigs import get_profile
from tests.edge.bundle_support import GOLDEN_BUNDLE, GOLDEN_PUB

INTEL = Machine(None, "TensorRT is not installed", ("CPUExecutionProvider",), openvino="2026.4.1",
                cpu_vendor="GenuineIntel")
AMD = Machine(None, "TensorRT is not installed", ("CPUExecutionProvider",), openvino="2026.4.1",
              cpu_vendor="AuthenticAMD")
AMD_BF16 = Machine(None, "TensorRT is not installed", ("CPUExecutionProvider",), openvino="2026.4.1",
                   cpu_vendor="AuthenticAMD", cpu_bf16=True)
SHIPPED = Path(__file__).resolve().parents[4] / "models" / "default.stainless"
DEMO_PUB = SHIPPED.parent / "demo-key" / "stainless-signing.pub"
NATIVE_BF16 = bf16_problem(cpu_capabilities()) is None


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
    # native bf16 alone is not enough: the model must ask for bf16 and its bundle's gate must have passed it
    assert "quality gate did not pass" in dict(select_backends("auto", AMD_BF16, bundle=True).skipped)["openvino"]


def test_auto_takes_openvino_on_any_cpu_with_native_bf16_for_a_gated_bf16() -> None:
    sel = select_backends("auto", AMD_BF16, bundle=True, bf16=True)
    assert sel.candidates == ("openvino", "onnxruntime-cpu")
    assert sel.reason("openvino").startswith("openvino (skipped tensorrt: ")
    no_bf16 = select_backends("auto", AMD, bundle=True, bf16=True)
    assert no_bf16.candidates == ("onnxruntime-cpu",)
    assert "no native bf16" in dict(no_bf16.skipped)["openvino"]


def test_auto_leaves_an_int8_member_to_onnxruntime_even_on_an_intel_cpu() -> None:
    sel = select_backends("auto", INTEL, bundle=True, member="int8")
    assert sel.candidates == ("onnxruntime-cpu",)
    assert "its own gated int8 IR, which this bundle lacks" in dict(sel.skipped)["openvino"]
    # an explicit request is the user's: OpenVINO stays allowed (it runs the fp32 graph)
    assert select_backends("openvino", INTEL, bundle=True, member="int8").candidates == ("openvino",)
    assert precision_note("int8", "openvino-fp32", False).startswith("fp32, not int8: OpenVINO runs")
    assert precision_note("int8", "onnxruntime-int8", False) == ""


def test_auto_takes_openvino_for_int8_when_the_bundle_has_a_gated_openvino_int8() -> None:
    sel = select_backends("auto", INTEL, bundle=True, member="int8", openvino_int8=True)
    assert sel.candidates == ("openvino", "onnxruntime-cpu")
    # the vendor rule still holds: elsewhere ONNX Runtime runs the int8 member
    assert select_backends("auto", AMD, bundle=True, member="int8", openvino_int8=True).candidates == (
        "onnxruntime-cpu",)
    assert precision_note("int8", "openvino-int8", False, "SSIM 0.9975").startswith("int8: the bundle's OpenVINO")


def test_the_precision_note_says_why_bf16_runs_or_not() -> None:
    assert precision_note("fp32", "onnxruntime-fp32", False) == ""
    assert precision_note("bf16", "openvino-bf16", True, "SSIM 0.9997").startswith("bf16: native")
    assert "SSIM 0.9997" in precision_note("bf16", "openvino-bf16", True, "SSIM 0.9997")
    assert "no passed quality gate" in precision_note("bf16", "onnxruntime-fp32", False)
    assert "OpenVINO only" in precision_note("bf16", "onnxruntime-fp32", True)


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


@pytest.mark.skipif(not NATIVE_BF16, reason="needs a CPU whose OpenVINO plugin runs bf16 natively (AVX-512 BF16 / AMX)")
def test_auto_runs_the_shipped_model_in_bf16_on_a_non_intel_cpu_with_native_bf16(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # the shipped bundle's gate passed openvino-bf16; the golden self-test runs on open
    monkeypatch.setattr("edge.device.model.probe_machine", lambda: AMD_BF16)
    cfg = ModelConfig(bundle=str(SHIPPED), public_key=str(DEMO_PUB), precision="bf16")
    model = open_model(cfg, get_profile("thesis-43"))
    try:
        assert model.backend.name == "openvino-bf16"
        assert "bf16: native on this CPU, the bundle's quality gate passed it (SSIM" in model.backend_reason
    finally:
        model.close()
    fp32 = open_model(dataclasses.replace(cfg, precision="fp32"), get_profile("thesis-43"))
    try:  # without bf16 asked for, auto keeps ONNX Runtime on this vendor
        assert fp32.backend.name == "onnxruntime-fp32"
    finally:
        fp32.close()
