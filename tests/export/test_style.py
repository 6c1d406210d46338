"""Stain styles in bundles: export, golden self-test, re-signing a bundle with a style added."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from edge.device.bundle import install, read_members, verify_bundle
from edge.device.manifest import MANIFEST_NAME
from edge.device.selftest import load_npy
from export.bundle import BundleConfig, build_bundle
from export.errors import ExportError
from export.keys import load_private_key
from export.style import parse_style_args, restyle_bundle
from tests.edge.bundle_support import GOLDEN_BUNDLE, GOLDEN_PUB, resign
from trainer.style.config import StyleModelConfig
from trainer.style.models import build_style_generator, save_style_checkpoint, style_generator_kwargs


def style_checkpoint(path: Path, name: str = "bluer", in_channels: int = 3, seed: int = 0) -> Path:
    """An untrained tiny ResNet style (2 features, 1 block) in the fit-style checkpoint format."""
    torch.manual_seed(seed)
    cfg = StyleModelConfig(features=2, n_blocks=1)
    g = build_style_generator(cfg, in_channels, 3)
    save_style_checkpoint(path, {
        "style": name, "generator": g.state_dict(), "inverse": {}, "config": {}, "epoch": 1, "step": 1,
        "metrics": {"nucleus_iou": 0.95},
        "model": {"generator": "resnet", "kwargs": style_generator_kwargs(cfg), "in_channels": in_channels,
                  "out_channels": 3, "patch_size": 32}})
    return path


def test_add_style_makes_a_new_signed_version_whose_style_self_tests(tmp_path: Path, keys: tuple[Path, Path]) -> None:
    priv, pub = keys
    ckpt = style_checkpoint(tmp_path / "style.pt")
    path, report = restyle_bundle(GOLDEN_BUNDLE, {"bluer": ckpt}, "1.1.0", load_private_key(priv), tmp_path,
                                  public_key=GOLDEN_PUB)
    assert path == tmp_path / "tiny-1.1.0.stainless" and report.parity["bluer"]["max_abs"] < 1e-4
    result = verify_bundle(path, pub, require_signature=True)
    assert result.ok, result.error
    assert [g.precision for g in result.golden] == ["fp32", "fp16", "int8", "style:bluer"]
    m = result.manifest
    assert m is not None and m.version == "1.1.0" and [s.name for s in m.styles] == ["bluer"]
    old, new = read_members(GOLDEN_BUNDLE), read_members(path)
    for member in ("model.fp32.onnx", "model.fp16.onnx", "model.int8.onnx", "golden/output_000.npy"):
        assert new[member] == old[member]  # the main models travel byte for byte
    entry = m.doc["styles"][0]
    assert entry["golden"]["input"] == "golden/output_000.npy" and entry["training"]["metrics"]["nucleus_iou"] == 0.95
    # replacing the style keeps one entry; installing runs every self-test
    path2, _ = restyle_bundle(path, {"bluer": style_checkpoint(tmp_path / "s2.pt", seed=1)}, "1.2.0",
                              load_private_key(priv), tmp_path, public_key=pub)
    doc = json.loads(read_members(path2)[MANIFEST_NAME])
    assert [s["name"] for s in doc["styles"]] == ["bluer"] and read_members(path2)["styles/bluer.fp32.onnx"] != \
        new["styles/bluer.fp32.onnx"]
    installed = install(path2, tmp_path / "root", pub)
    assert [s.name for s in installed.manifest.styles] == ["bluer"]


def test_a_tampered_style_golden_fails_the_self_test(tmp_path: Path, keys: tuple[Path, Path]) -> None:
    priv, pub = keys
    key = load_private_key(priv)
    path, _ = restyle_bundle(GOLDEN_BUNDLE, {"bluer": style_checkpoint(tmp_path / "s.pt")}, "1.1.0", key, tmp_path)
    members = read_members(path)
    doc = json.loads(members.pop(MANIFEST_NAME))
    members.pop("manifest.sig")
    golden = load_npy(members["golden/style-bluer_000.npy"], "g")
    import io
    buf = io.BytesIO()
    np.save(buf, golden + 0.05)
    members["golden/style-bluer_000.npy"] = buf.getvalue()
    bad = resign(tmp_path / "bad.stainless", members, doc, key)  # correctly signed, wrong golden output
    result = verify_bundle(bad, pub, require_signature=True)
    assert not result.ok and result.error is not None and result.error.code == "self-test"
    assert "style bluer" in str(result.error)


def test_refusals(tmp_path: Path, keys: tuple[Path, Path]) -> None:
    key = load_private_key(keys[0])
    with pytest.raises(ExportError, match=r"already is version 1\.0\.0"):
        restyle_bundle(GOLDEN_BUNDLE, {"x": style_checkpoint(tmp_path / "s.pt")}, "1.0.0", key, tmp_path)
    with pytest.raises(ExportError, match="maps 2 → 3 channels"):
        restyle_bundle(GOLDEN_BUNDLE, {"x": style_checkpoint(tmp_path / "n.pt", in_channels=2)}, "1.1.0", key,
                       tmp_path)
    assert parse_style_args([f"{tmp_path / 's.pt'}"]) == {"bluer": tmp_path / "s.pt"}
    with pytest.raises(ExportError, match="NAME=CHECKPOINT"):
        parse_style_args(["Bad Name=x.pt"])


def test_build_bundle_takes_styles(tmp_path: Path, checkpoint: Path, keys: tuple[Path, Path]) -> None:
    report = build_bundle(checkpoint, BundleConfig("tiny", "2.0.0"), tmp_path, load_private_key(keys[0]),
                          styles={"bluer": style_checkpoint(tmp_path / "s.pt")})
    assert "style:bluer" in report.parity
    result = verify_bundle(report.path, keys[1], require_signature=True)
    assert result.ok and result.manifest is not None and result.manifest.styles[0].payload == "stained:bluer"
