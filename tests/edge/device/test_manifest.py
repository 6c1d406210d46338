"""Manifest validation, canonical JSON, golden comparison and key handling."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge.device.errors import ManifestError, SchemaVersionError, SelfTestError, SignatureError
from edge.device.manifest import (
    Manifest,
    Tolerance,
    canonical_json,
    compare_outputs,
    is_semver,
    key_id,
    load_public_key,
    signature_blob,
    verify_signature,
)
from tests.edge.bundle_support import GOLDEN_PUB, golden_members, manifest_doc


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    return manifest_doc(golden_members())


def test_canonical_json_is_sorted_compact_utf8() -> None:
    assert canonical_json({"b": 1, "a": [1.5, "µm"]}) == '{"a":[1.5,"µm"],"b":1}'.encode()


def test_stored_manifest_parses(doc: dict[str, Any]) -> None:
    m = Manifest.from_dict(doc)
    assert m.in_channels == 3 * len(m.channels) == 12 and m.patch_size == 16
    assert (m.batch_min, m.batch_opt, m.batch_max) == (1, 8, 32)
    assert m.model("fp16").file == "model.fp16.onnx" and m.preferred_precision == "fp16"
    with pytest.raises(ManifestError, match="has no"):
        m.model("fp64")


def _set(doc: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    out = copy.deepcopy(doc)
    *parents, last = path.split(".")
    node = out
    for p in parents:
        node = node[int(p)] if isinstance(node, list) else node[p]
    if value is KeyError:
        del node[last]
    else:
        node[last] = value
    return out


@pytest.mark.parametrize(("path", "value", "words"), [
    ("version", "1.0", "semantic version"),
    ("name", "Bad Name", "name"),
    ("patch_size", 0, "patch_size"),
    ("input.shape", ["batch", 11, 16, 16], "input.shape"),
    ("output.shape", ["batch", 4, 16, 16], "output.shape"),
    ("recipe.channels", [], "recipe.channels"),
    ("batch_profile.opt", 64, "batch_profile"),
    ("precision.preferred", "bf16", "precision.preferred"),
    ("precision.models.0.tolerance", {"max_abs": 0.1, "p99_abs": 0.2}, "p99_abs"),
    ("golden", [], "golden"),
    ("files.model.fp32.onnx", KeyError, "files"),
    ("recipe", KeyError, "recipe"),
])
def test_invalid_fields_are_named(doc: dict[str, Any], path: str, value: Any, words: str) -> None:
    if path.startswith("files."):
        bad = copy.deepcopy(doc)
        del bad["files"]["model.fp32.onnx"]
    else:
        bad = _set(doc, path, value)
    with pytest.raises(ManifestError, match=words.replace(".", r"\.")):
        Manifest.from_dict(bad)


@pytest.mark.parametrize("version", [0, 2, "1", None, True])
def test_unknown_schema_versions(doc: dict[str, Any], version: Any) -> None:
    with pytest.raises(SchemaVersionError, match="schema_version"):
        Manifest.from_dict({**doc, "schema_version": version})


def test_semver() -> None:
    assert is_semver("1.2.3") and is_semver("2.0.0-rc.1+build.5")
    assert not is_semver("01.2.3") and not is_semver("1.2") and not is_semver("v1.2.3")


def test_compare_outputs_statistics() -> None:
    want = np.zeros((2, 3, 16, 16), np.float32)
    got = want.copy()
    got[0, 0, 0, 0] = 0.5
    r = compare_outputs(got, want, Tolerance(0.6, 0.01), "fp16")
    assert r.max_abs == pytest.approx(0.5) and r.median_abs == 0.0 and r.passed
    assert not compare_outputs(got, want, Tolerance(0.4, 0.01)).passed
    got[1] = np.nan
    assert not compare_outputs(got, want, Tolerance(1.0, 1.0)).passed
    with pytest.raises(SelfTestError, match="shape"):
        compare_outputs(got[:1], want, Tolerance(1.0, 1.0))


def test_signature_roundtrip_and_key_formats(doc: dict[str, Any]) -> None:
    key = Ed25519PrivateKey.generate()
    pub = key.public_key()
    blob = signature_blob(key.sign(canonical_json(doc)), pub)
    raw = pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    pem = pub.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    for form in (pub, raw, pem):
        assert verify_signature(doc, blob, load_public_key(form)) == key_id(pub)
    with pytest.raises(SignatureError, match="changed after signing"):
        verify_signature({**doc, "name": "other"}, blob, pub)
    with pytest.raises(SignatureError, match="malformed"):
        verify_signature(doc, b"{}", pub)
    with pytest.raises(SignatureError, match="not a PEM"):
        load_public_key(b"-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----\n")
    assert len(key_id(load_public_key(GOLDEN_PUB))) == 16


def _style(name: str = "wg", patch: int = 16, **over: Any) -> dict[str, Any]:
    return {"name": name, "payload": f"stained:{name}", "file": f"styles/{name}.fp32.onnx", "precision": "fp32",
            "input": {"name": "rgb", "shape": ["batch", 3, patch, patch], "source": "output"},
            "output": {"name": "styled", "shape": ["batch", 3, patch, patch], "range": [0.0, 1.0]},
            "tolerance": {"max_abs": 1e-4, "p99_abs": 1e-5},
            "golden": {"input": "golden/output_000.npy", "output": f"golden/style-{name}_000.npy"}, **over}


def _with_styles(doc: dict[str, Any], *styles: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(doc)
    out["styles"] = list(styles)
    for s in styles:
        out["files"].update({s["file"]: "0" * 64, s["golden"]["output"]: "1" * 64})
    return out


def test_styles_are_optional_and_parsed(doc: dict[str, Any]) -> None:
    assert Manifest.from_dict(doc).styles == ()
    m = Manifest.from_dict(_with_styles(doc, _style("wg"), _style("mgg.lab-2")))
    assert [s.name for s in m.styles] == ["wg", "mgg.lab-2"]
    wg = m.styles[0]
    assert (wg.payload, wg.file, wg.input_name, wg.output_name) == ("stained:wg", "styles/wg.fp32.onnx", "rgb",
                                                                    "styled")
    assert wg.golden.input == "golden/output_000.npy" and wg.tolerance.max_abs == 1e-4


@pytest.mark.parametrize(("styles", "words"), [
    ((_style("WG"),), "styles[0].name"),
    ((_style(patch=32),), "styles[0].input.shape"),
    ((_style("wg"), _style("wg")), "unique style names"),
    ((_style(golden={"input": "golden/output_000.npy"}),), "styles[0].golden.output"),
])
def test_bad_styles_are_named(doc: dict[str, Any], styles: tuple[dict[str, Any], ...], words: str) -> None:
    bad = copy.deepcopy(doc)
    bad["styles"] = list(styles)
    bad["files"].update({m: "0" * 64 for s in styles for m in (s["file"], s["golden"].get("output", "x"))})
    with pytest.raises(ManifestError, match=words.replace(".", r"\.").replace("[", r"\[")):
        Manifest.from_dict(bad)


def test_a_style_without_a_hash_is_refused(doc: dict[str, Any]) -> None:
    bad = _with_styles(doc, _style("wg"))
    del bad["files"]["styles/wg.fp32.onnx"]
    with pytest.raises(ManifestError, match="a hash for every style model"):
        Manifest.from_dict(bad)


def test_gate_summary_gives_the_figures_and_how_they_were_measured(doc: dict[str, Any]) -> None:
    assert Manifest.from_dict(doc).gate_summary("openvino-bf16") == ""  # the golden bundle predates the gate
    record = {"passed": True, "reason": "SSIM 0.9999, nucleus IoU 0.85 (fp32 0.85)", "measured_with": "openvino-bf16"}
    gated = Manifest.from_dict({**copy.deepcopy(doc), "quality_gate": {"openvino-bf16": record}})
    assert gated.gate_passed("openvino-bf16")
    assert gated.gate_summary("openvino-bf16") == f"{record['reason']}, measured with openvino-bf16"
