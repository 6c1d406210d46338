"""``stainless-export`` end to end: keygen, onnx, bundle, verify (pass and fail), engine without TensorRT."""

from __future__ import annotations

import io
import json
import sys
import tarfile
from pathlib import Path

import pytest

from export.cli import main


def _json(capsys: pytest.CaptureFixture[str]) -> dict:  # type: ignore[type-arg]
    return json.loads(capsys.readouterr().out)


def test_keygen_bundle_verify(tmp_path: Path, checkpoint: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["keygen", "--out", str(tmp_path / "keys"), "--json"]) == 0
    keys = _json(capsys)
    assert main(["keygen", "--out", str(tmp_path / "keys")]) == 1  # refuses to overwrite
    capsys.readouterr()
    out = tmp_path / "dist"
    out.mkdir()
    assert main(["bundle", str(checkpoint), "--name", "wbc", "--version", "1.0.0", "--key", keys["private"],
                 "--out", str(out), "--golden", "1", "--max-batch", "8", "--json"]) == 0
    bundle = Path(_json(capsys)["path"])
    assert main(["verify", str(bundle), "--pubkey", keys["public"], "--json"]) == 0
    assert _json(capsys)["ok"] is True
    tampered = tmp_path / "tampered.stainless"
    with tarfile.open(bundle) as src, tarfile.open(tampered, "w") as dst:
        for m in src.getmembers():
            data = src.extractfile(m).read()  # type: ignore[union-attr]
            if m.name == "model.fp16.onnx":
                data = data[:100] + bytes([data[100] ^ 1]) + data[101:]
            dst.addfile(m, io.BytesIO(data))
    assert main(["verify", str(tampered), "--pubkey", keys["public"], "--json"]) == 1
    report = _json(capsys)
    assert report["error"]["code"] == "hash-mismatch" and "model.fp16.onnx" in report["error"]["message"]
    assert main(["verify", str(tampered)]) == 1
    assert "FAIL  hashes" in capsys.readouterr().out


def test_bundle_without_key_is_a_usage_error(checkpoint: Path, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bundle", str(checkpoint), "--name", "wbc", "--version", "1.0.0", "--out", str(tmp_path)]) == 2
    assert "--key" in capsys.readouterr().err


def test_onnx_command(checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["onnx", str(checkpoint), "--out", str(tmp_path / "m.onnx"), "--fp16", str(tmp_path / "h.onnx"),
                 "--json"]) == 0
    doc = _json(capsys)
    assert doc["fp32"]["max_abs"] <= 1e-4 and doc["fp16"]["p99_abs"] <= 5e-3
    assert (tmp_path / "m.onnx").is_file() and (tmp_path / "h.onnx").is_file()


def test_missing_checkpoint_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["onnx", str(tmp_path / "nope.pt"), "--out", str(tmp_path / "m.onnx")]) == 1
    assert "not found" in capsys.readouterr().err


def test_engine_without_tensorrt(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    bundle = Path(__file__).parents[1] / "data" / "export" / "tiny-1.0.0.stainless"
    assert main(["engine", str(bundle), "--fp16", "--max-batch", "32"]) == 1
    assert "TensorRT is not installed" in capsys.readouterr().err
