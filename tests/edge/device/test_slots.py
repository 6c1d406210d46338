"""Install slots and the version record: refusals by code that leave the root untouched, downgrades, models."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge.device import slots
from edge.device.config import ModelConfig
from edge.device.manifest import SIGNATURE_NAME
from edge.device.opsconfig import FlashConfig
from tests.edge.bundle_support import golden_members, manifest_doc, resign, write_tar


@pytest.fixture
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def version(tmp_path: Path, key: Ed25519PrivateKey, v: str) -> Path:
    members = golden_members()
    return resign(tmp_path / f"tiny-{v}.stainless", members, {**manifest_doc(members), "version": v}, key)


def tree(root: Path) -> dict[str, bytes | str]:
    """Every path under ``root`` with its content (files) or link target (links)."""
    out: dict[str, bytes | str] = {}
    for p in sorted(root.rglob("*")):
        rel = str(p.relative_to(root))
        out[rel] = os.readlink(p) if p.is_symlink() else p.read_bytes() if p.is_file() else "dir"
    return out


def test_version_precedence_follows_semver() -> None:
    order = ["0.9.9", "1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-beta.2", "1.0.0-beta.11", "1.0.0-rc.1", "1.0.0",
             "1.0.1", "1.10.0", "2.0.0"]
    assert sorted(order, key=slots.version_key) == order
    assert slots.version_key("1.0.0+build.7") == slots.version_key("1.0.0")


def test_install_records_versions_and_models_lists_slots(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    root, trust = tmp_path / "models", slots.TrustPolicy((key.public_key(),))
    slots.install(version(tmp_path, key, "1.0.0"), root, trust)
    slots.install(version(tmp_path, key, "1.1.0").read_bytes(), root, trust)  # bytes work as a path does
    listing = slots.models(root)
    assert listing["current"] == "tiny-1.1.0" and listing["previous"] == "tiny-1.0.0"
    assert listing["highest"] == {"tiny": "1.1.0"}
    assert [s["slot"] for s in listing["slots"]] == ["tiny-1.0.0", "tiny-1.1.0"]
    for s in listing["slots"]:
        assert s["installed"] and s["signer"] != "unsigned" and len(s["self_test"]) == 3  # fp32, fp16, int8
        assert s["created"] == manifest_doc(golden_members())["created"]
    assert json.loads((root / slots.RECORD_NAME).read_text())["schema_version"] == 1
    assert slots.rollback(root).manifest.version == "1.0.0"
    assert slots.models(root)["highest"] == {"tiny": "1.1.0"}  # a rollback lowers nothing


def _tampered(tmp_path: Path, key: Ed25519PrivateKey) -> Path:
    members = golden_members()
    members["model.fp32.onnx"] = members["model.fp32.onnx"][:-1] + b"\0"
    return resign(tmp_path / "t.stainless", members, manifest_doc(members) | {"version": "2.0.0"}, key, rehash=False)


def _unsigned(tmp_path: Path, key: Ed25519PrivateKey) -> Path:
    members = golden_members()
    del members[SIGNATURE_NAME]
    members["manifest.json"] = json.dumps(manifest_doc(members) | {"version": "2.0.0"}).encode()
    return write_tar(tmp_path / "u.stainless", members)


def _other_signer(tmp_path: Path, key: Ed25519PrivateKey) -> Path:
    return version(tmp_path, Ed25519PrivateKey.generate(), "2.0.0")


def _bad_golden(tmp_path: Path, key: Ed25519PrivateKey) -> Path:
    members = golden_members()
    out = np.load(io.BytesIO(members["golden/output_000.npy"]))
    buf = io.BytesIO()
    np.save(buf, (1.0 - out).astype(np.float32))
    members["golden/output_000.npy"] = buf.getvalue()
    return resign(tmp_path / "g.stainless", members, manifest_doc(members) | {"version": "2.0.0"}, key)


def _downgrade(tmp_path: Path, key: Ed25519PrivateKey) -> Path:
    return version(tmp_path, key, "1.0.0")  # signed by the trusted key, older than the committed 1.1.0


@pytest.mark.parametrize(("make", "code"), [
    (_tampered, "hash_mismatch"), (_unsigned, "unsigned"), (_other_signer, "bad_signature"),
    (_bad_golden, "self_test_failed"), (_downgrade, "downgrade")])
def test_a_refused_bundle_leaves_the_root_unchanged(tmp_path: Path, key: Ed25519PrivateKey, make: object,
                                                    code: str) -> None:
    root, trust = tmp_path / "models", slots.TrustPolicy((key.public_key(),))
    slots.install(version(tmp_path, key, "1.0.0"), root, trust)
    slots.install(version(tmp_path, key, "1.1.0"), root, trust)
    slots.rollback(root)  # current 1.0.0 again: a replayed 1.0.0 is still older than the highest 1.1.0
    before = tree(root)
    bad = make(tmp_path, key)  # type: ignore[operator]
    with pytest.raises(slots.FlashRefused) as err:
        slots.install(bad, root, trust)
    assert err.value.code == code, err.value
    assert tree(root) == before


def test_a_forced_downgrade_installs(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    root, trust = tmp_path / "models", slots.TrustPolicy((key.public_key(),))
    slots.install(version(tmp_path, key, "1.1.0"), root, trust)
    slots.install(version(tmp_path, key, "1.0.0"), root, trust, force=True)
    listing = slots.models(root)
    assert listing["current"] == "tiny-1.0.0" and listing["highest"] == {"tiny": "1.1.0"}


def test_unsigned_bundles_install_only_when_allowed(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    root = tmp_path / "models"
    with pytest.raises(slots.FlashRefused, match="allow_unsigned") as err:
        slots.install(_unsigned(tmp_path, key), root, slots.TrustPolicy())
    assert err.value.code == "unsigned"
    slots.install(_unsigned(tmp_path, key), root, slots.TrustPolicy((key.public_key(),), allow_unsigned=True))
    assert slots.models(root)["slots"][0]["signer"] == "unsigned"


def test_any_of_several_trusted_keys_may_sign(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    from cryptography.hazmat.primitives import serialization

    other = Ed25519PrivateKey.generate()
    files = []
    for i, k in enumerate((other, key)):
        f = tmp_path / f"k{i}.pub"
        f.write_bytes(k.public_key().public_bytes(serialization.Encoding.PEM,
                                                  serialization.PublicFormat.SubjectPublicKeyInfo))
        files.append(str(f))
    trust = slots.TrustPolicy.from_config(FlashConfig(trusted_keys=tuple(files)), ModelConfig(onnx="m.onnx"))
    assert slots.install(version(tmp_path, key, "1.0.0"), tmp_path / "models", trust).manifest.version == "1.0.0"
    fallback = slots.TrustPolicy.from_config(FlashConfig(), ModelConfig(onnx="m.onnx", public_key=files[1]))
    assert len(fallback.keys) == 1


def test_an_incompatible_bundle_is_refused_before_anything_is_written(tmp_path: Path,
                                                                      key: Ed25519PrivateKey) -> None:
    root = tmp_path / "models"

    def compatible(m: object) -> None:
        slots.check_compatible(m, "another-recipe-hash", 16, 24)  # type: ignore[arg-type]

    with pytest.raises(slots.FlashRefused) as err:
        slots.install(version(tmp_path, key, "1.0.0"), root, slots.TrustPolicy((key.public_key(),)),
                      compatible=compatible)
    assert err.value.code == "recipe_mismatch" and not root.exists()
