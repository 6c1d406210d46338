"""Checkpoint → signed bundle → verified by the edge reader; bad keys and configs refused."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path
from typing import Any

import onnx
import pytest
import torch

from core.config import ConfigError
from edge.device.bundle import read_members, verify_bundle
from edge.device.errors import MissingSignatureError, SignatureError
from edge.device.manifest import MANIFEST_NAME, SIGNATURE_NAME
from export.bundle import BundleConfig, BundleReport, build_bundle
from export.keys import keygen, load_private_key
from tests.edge.bundle_support import write_tar
from trainer.checkpoint import load_checkpoint
from trainer.errors import CheckpointError


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, checkpoint: Path, dataset: Path,
          keys: tuple[Path, Path]) -> BundleReport:
    cfg = BundleConfig("wbc", "0.1.0", int8=True, calibration_count=8, batch_max=16)
    return build_bundle(checkpoint, cfg, tmp_path_factory.mktemp("dist"), load_private_key(keys[0]), dataset)


def test_bundle_verifies_with_the_signing_key(built: BundleReport, keys: tuple[Path, Path]) -> None:
    assert built.path.name == "wbc-0.1.0.stainless"
    report = verify_bundle(built.path, keys[1], require_signature=True)
    assert report.ok, report.to_dict()
    assert [g.precision for g in report.golden] == ["fp32", "fp16", "int8"]


def test_manifest_contents(built: BundleReport, checkpoint: Path) -> None:
    members = read_members(built.path)
    doc: dict[str, Any] = json.loads(members[MANIFEST_NAME])
    ckpt = torch.load(checkpoint, weights_only=True)
    assert doc["recipe"] == {"id": "le8", "hash": ckpt["recipe"]["hash"], "channels": ckpt["recipe"]["channel_names"]}
    assert doc["input"]["shape"] == ["batch", 12, 16, 16] and doc["output"]["shape"] == ["batch", 3, 16, 16]
    assert doc["batch_profile"] == {"min": 1, "opt": 8, "max": 16}
    assert doc["onnx"]["opset"] == 17 and doc["min_tensorrt"] == "10.0"
    assert set(doc["files"]) == set(members) - {MANIFEST_NAME, SIGNATURE_NAME}
    assert doc["training"]["model"]["generator"] == "rrdb" and "ssim" in doc["training"]["test_metrics"]
    assert set(built.parity) == {"fp32", "fp16", "int8"} and built.parity["fp32"]["max_abs"] <= 1e-4
    assert built.int8_quality is not None and set(built.int8_quality) >= {"ssim", "nucleus_iou"}
    assert doc["int8"] == built.int8 and doc["int8"]["format"] == "qoperator" and doc["int8"]["in_bundle"]
    assert doc["int8"]["activations"] == "uint8 asymmetric" and doc["int8"]["float_nodes"] == []
    assert doc["int8"]["gate"] == doc["quality_gate"]["int8"]["reason"] and doc["quality_gate"]["int8"]["passed"]
    ops = {n.op_type for n in onnx.load_from_string(members["model.int8.onnx"]).graph.node}
    assert "QLinearConv" in ops and "Conv" not in ops
    with tarfile.open(built.path) as tar:
        assert tar.getnames()[:2] == [MANIFEST_NAME, SIGNATURE_NAME]
        assert all(m.isreg() and m.mode == 0o644 for m in tar.getmembers())


def test_another_key_is_refused(built: BundleReport, tmp_path: Path) -> None:
    _, other, _ = keygen(tmp_path)
    err = verify_bundle(built.path, other).error
    assert isinstance(err, SignatureError) and not isinstance(err, MissingSignatureError)


def test_unsigned_bundle_needs_no_key_but_fails_with_one(checkpoint: Path, tmp_path: Path,
                                                         keys: tuple[Path, Path]) -> None:
    report = build_bundle(checkpoint, BundleConfig("wbc", "0.2.0", golden_count=1, calibration_count=4),
                          tmp_path / "u.stainless", None)
    assert report.key_id is None and verify_bundle(report.path).ok
    assert isinstance(verify_bundle(report.path, keys[1]).error, MissingSignatureError)


def test_a_bundle_reads_as_the_checkpoint_it_was_made_from(built: BundleReport, checkpoint: Path,
                                                           tmp_path: Path) -> None:
    """``loss.teacher``, ``evaluate`` and ``export`` take a shipped bundle where they take a best.pt."""
    want, got = torch.load(checkpoint, weights_only=True), load_checkpoint(built.path)
    assert got["recipe"] == want["recipe"] and got["model"] == want["model"] and got["kind"] == "best"
    assert got["generator"].keys() == want["generator"].keys()
    for name, weights in want["generator"].items():
        assert torch.equal(got["generator"][name], weights), name
    members = read_members(built.path)
    write_tar(tmp_path / "changed.stainless", {**members, "model.fp32.onnx": members["model.fp32.onnx"] + b"\0"})
    with pytest.raises(CheckpointError, match=r"not a readable model bundle: .*model\.fp32\.onnx"):
        load_checkpoint(tmp_path / "changed.stainless")
    doc = json.loads(members[MANIFEST_NAME])
    doc["training"]["model"]["generator"] = "vit"
    write_tar(tmp_path / "vit.stainless", {**members, MANIFEST_NAME: json.dumps(doc).encode()})
    with pytest.raises(CheckpointError, match="does not describe a generator of this stainless"):
        load_checkpoint(tmp_path / "vit.stainless")
    del doc["training"]
    write_tar(tmp_path / "untrained.stainless", {**members, MANIFEST_NAME: json.dumps(doc).encode()})
    with pytest.raises(CheckpointError, match="records no training model"):
        load_checkpoint(tmp_path / "untrained.stainless")


@pytest.mark.parametrize("kwargs", [{"golden_count": 0}, {"batch_min": 4, "batch_opt": 2}, {"opset": 13},
                                    {"preferred": "int8"}, {"fp16_margin": 0.0}])
def test_bad_configs_are_refused(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConfigError, match=r"bundle\.\w+: expected"):
        BundleConfig("wbc", "1.0.0", **kwargs)
