"""The quality gate per precision: verdicts on outputs, and variants left out of the bundle when they fail."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edge.device.bundle import read_members, verify_bundle
from edge.device.manifest import MANIFEST_NAME, Manifest
from export.bundle import BundleConfig, build_bundle
from export.gate import judge
from export.keys import load_private_key


def outputs(n: int = 4, seed: int = 0) -> np.ndarray:
    """Smooth RGB patches with a dark blob (a stand-in stained cell), ``(n, 3, 32, 32)``."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:32, :32]
    out = np.empty((n, 3, 32, 32), np.float32)
    for i in range(n):
        blob = ((yy - rng.uniform(10, 22)) ** 2 + (xx - rng.uniform(10, 22)) ** 2 < 36).astype(np.float32)
        out[i] = np.clip(0.85 - blob * np.array([0.5, 0.6, 0.2])[:, None, None], 0, 1)
    return out


def test_identical_outputs_pass_and_say_so() -> None:
    y = outputs()
    result = judge("fp16", y, y, None, 0.293)
    assert result.passed and result.ssim == pytest.approx(1.0) and result.nucleus_iou == 1.0
    assert result.reason.startswith("SSIM 1.0000") and result.n == 4


def test_noisy_outputs_fail_on_ssim_with_the_figure() -> None:
    y = outputs()
    noisy = np.clip(y + np.random.default_rng(1).normal(0, 0.05, y.shape), 0, 1).astype(np.float32)
    result = judge("int8", noisy, y, None, 0.293)
    assert not result.passed and "SSIM vs fp32 0." in result.reason and "< 0.995" in result.reason


def test_non_finite_outputs_fail() -> None:
    y = outputs()
    result = judge("int8", np.full_like(y, np.nan), y, None, 0.293)
    assert not result.passed and result.reason == f"{y.size} non-finite output values"


def test_a_failing_precision_is_left_out_of_the_bundle_and_the_export_says_why(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, checkpoint: Path, dataset: Path,
        keys: tuple[Path, Path], caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr("export.gate.SSIM_MIN", 1.5)  # nothing but fp32 itself can pass
    cfg = BundleConfig("wbc", "0.3.0", int8=True, calibration_count=8, batch_max=8, preferred="int8")
    report = build_bundle(checkpoint, cfg, tmp_path, load_private_key(keys[0]), dataset)
    assert set(report.quality_gate) == {"fp16", "int8", "openvino-bf16"}
    assert all(not g["passed"] and "< 1.5" in g["reason"] for g in report.quality_gate.values())
    assert "int8 is left out of the bundle" in caplog.text
    members = read_members(report.path)
    assert "model.fp16.onnx" not in members and "model.int8.onnx" not in members
    manifest = Manifest.from_dict(json.loads(members[MANIFEST_NAME]))
    assert [m.precision for m in manifest.models] == ["fp32"] and manifest.preferred_precision == "fp32"
    assert not manifest.gate_passed("openvino-bf16")
    assert manifest.doc["int8"]["in_bundle"] is False and "< 1.5" in manifest.doc["int8"]["gate"]
    assert verify_bundle(report.path, keys[1], require_signature=True).ok


def test_passing_precisions_are_kept_with_their_figures(tmp_path: Path, checkpoint: Path, dataset: Path,
                                                        keys: tuple[Path, Path]) -> None:
    cfg = BundleConfig("wbc", "0.4.0", calibration_count=8, batch_max=8)
    report = build_bundle(checkpoint, cfg, tmp_path, load_private_key(keys[0]), dataset)
    gate = report.quality_gate
    assert gate["fp16"]["passed"] and gate["fp16"]["ssim"] >= 0.995 and gate["fp16"]["n"] >= 1
    manifest = Manifest.from_dict(json.loads(read_members(report.path)[MANIFEST_NAME]))
    assert [m.precision for m in manifest.models] == ["fp32", "fp16"]
    assert manifest.gate_passed("openvino-bf16") == gate["openvino-bf16"]["passed"]
    assert "bf16" in gate["openvino-bf16"]["measured_with"]
