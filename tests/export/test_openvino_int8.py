"""OpenVINO int8 by NNCF: made at export or added to a bundle, gated, carried by the manifest and opened
by the device on OpenVINO (golden self-test on open); a variant that fails the gate is left out."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edge.device.bundle import read_members, verify_bundle
from edge.device.config import ModelConfig
from edge.device.errors import ManifestError
from edge.device.manifest import MANIFEST_NAME, OPENVINO_INT8, Manifest
from edge.device.model import open_model
from export.bundle import BundleConfig, BundleReport, build_bundle
from export.calibration import synthetic_stacks
from export.errors import ExportError
from export.keys import load_private_key
from export.openvino_int8 import BIN, XML, add_openvino_int8, requantize_bundle
from firmware_bridge.rigs import get_profile

FAST = Path(__file__).resolve().parents[2] / "models" / "fast.stainless"


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, checkpoint: Path, dataset: Path,
          keys: tuple[Path, Path]) -> BundleReport:
    cfg = BundleConfig("wbc", "0.1.0", openvino_int8="mixed", calibration_count=8, batch_max=16)
    return build_bundle(checkpoint, cfg, tmp_path_factory.mktemp("dist"), load_private_key(keys[0]), dataset)


def _doc(path: Path) -> dict:
    return json.loads(read_members(path)[MANIFEST_NAME])


def test_the_export_adds_a_gated_ir_that_the_device_opens_on_openvino(built: BundleReport,
                                                                       keys: tuple[Path, Path]) -> None:
    doc = _doc(built.path)
    gate = doc["quality_gate"][OPENVINO_INT8]
    assert gate["passed"] and gate["ssim"] >= 0.995 and gate["measured_with"] == "openvino-cpu, NNCF mixed"
    assert built.quality_gate[OPENVINO_INT8] == gate
    assert doc["openvino"]["int8"]["model"] == XML and doc["openvino"]["int8"]["quantisation"]["preset"] == "mixed"
    assert {XML, BIN} <= set(doc["files"]) and b"FakeQuantize" in read_members(built.path)[XML]
    assert verify_bundle(built.path, keys[1], require_signature=True).ok
    cfg = ModelConfig(bundle=str(built.path), public_key=str(keys[1]), backend="openvino", precision="int8")
    model = open_model(cfg, get_profile("thesis-43"))
    try:
        assert model.backend.name == "openvino-int8"
        assert "int8: the bundle's OpenVINO int8 IR (NNCF), its quality gate passed it (SSIM" in model.backend_reason
        assert model.backend.raw_input_pays  # the normalising prefix by OpenVINO's preprocessing
    finally:
        model.close()


def test_a_variant_that_fails_the_gate_is_left_out_with_its_verdict() -> None:
    # the shipped student (the tiny test model's near-flat outputs pass any quantisation), calibrated on
    # black stacks: every activation range collapses and the outputs leave fp32's
    members = read_members(FAST)
    doc = json.loads(members.pop(MANIFEST_NAME))
    x = synthetic_stacks(4, 132, int(doc["patch_size"]))
    result = add_openvino_int8(members, doc, np.zeros_like(x), x, None, 0.293)
    assert not result.passed and result.ssim < 0.5 and doc["quality_gate"][OPENVINO_INT8]["passed"] is False
    assert "openvino" not in doc and XML not in members and BIN not in members and XML not in doc["files"]
    Manifest.from_dict(doc)  # still a valid manifest, without the IR


def test_an_existing_bundle_gets_the_ir_as_a_new_version(built: BundleReport, dataset: Path, tmp_path: Path,
                                                         keys: tuple[Path, Path]) -> None:
    key = load_private_key(keys[0])
    with pytest.raises(ExportError, match=r"already is version 0\.1\.0"):
        requantize_bundle(built.path, dataset, "0.1.0", key, tmp_path)
    path, gate = requantize_bundle(built.path, dataset, "0.1.1", key, tmp_path, keys[1], preset="performance")
    assert path.name == "wbc-0.1.1.stainless" and verify_bundle(path, keys[1], require_signature=True).ok
    old, new = read_members(built.path), read_members(path)
    assert all(new[k] == old[k] for k in old if k.startswith(("model.", "golden/")) and k not in (XML, BIN))
    doc = _doc(path)
    assert gate.passed == (XML in new) and doc["openvino"]["int8"]["quantisation"]["preset"] == "performance"


def test_a_manifest_naming_an_ir_without_its_hash_is_refused(built: BundleReport) -> None:
    doc = _doc(built.path)
    del doc["files"][BIN]
    with pytest.raises(ManifestError, match="a hash for the OpenVINO int8 model and weights"):
        Manifest.from_dict(doc)


def test_the_cli_adds_it_and_prints_clean_json(built: BundleReport, dataset: Path, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    from export.cli import main

    out = tmp_path / "wbc-0.2.0.stainless"
    args = ["add-openvino-int8", str(built.path), "--dataset", str(dataset), "--version", "0.2.0", "--out", str(out)]
    assert main(args) == 2 and "--key PRIVATE is required" in capsys.readouterr().err
    assert main([*args, "--unsigned", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)  # NNCF's progress bars go to stderr
    assert doc["path"] == str(out) and doc["quality_gate"]["variant"] == OPENVINO_INT8
    assert _doc(out)["version"] == "0.2.0"


def test_nncf_is_imported_without_its_telemetry() -> None:
    # outside pytest (which NNCF detects and goes quiet for): a fresh interpreter, as an export runs
    code = ("import sys; from export.openvino_int8 import import_nncf; import_nncf(); "
            "from nncf.telemetry.wrapper import NNCFTelemetryStub, telemetry; "
            "print(isinstance(telemetry, NNCFTelemetryStub), 'openvino_telemetry' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.split() == ["True", "False"]
