"""Bundle reader, verifier and installer against the stored golden bundle and crafted bad archives."""

from __future__ import annotations

import io
import json
import os
import tarfile
from pathlib import Path

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge.device import bundle as eb
from edge.device.errors import (
    BundleFormatError,
    HashMismatchError,
    InstallError,
    MissingSignatureError,
    OversizedMemberError,
    RecipeMismatchError,
    SchemaVersionError,
    SelfTestError,
    SignatureError,
    UnsafeMemberError,
)
from edge.device.manifest import MANIFEST_NAME, SIGNATURE_NAME
from tests.edge.bundle_support import GOLDEN_BUNDLE, GOLDEN_PUB, golden_members, manifest_doc, resign, write_tar


@pytest.fixture
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def _error(path: Path, pub: object = GOLDEN_PUB, **kwargs: object) -> Exception | None:
    return eb.verify_bundle(path, pub, **kwargs).error  # type: ignore[arg-type]


def test_stored_bundle_verifies_with_its_key() -> None:
    report = eb.verify_bundle(GOLDEN_BUNDLE, GOLDEN_PUB, require_signature=True)
    assert report.ok, report.to_dict()
    assert [c.ok for c in report.checks] == [True, True, True, True, None, True]
    assert {g.precision for g in report.golden} == {"fp32", "fp16", "int8"}
    assert report.manifest is not None and report.manifest.slug == "tiny-1.0.0"
    assert json.loads(json.dumps(report.to_dict()))["ok"] is True


def test_without_key_the_signature_is_reported_unchecked() -> None:
    report = eb.verify_bundle(GOLDEN_BUNDLE)
    assert report.ok and report.checks[2].ok is None


def test_required_signature_without_key_is_refused() -> None:
    assert isinstance(_error(GOLDEN_BUNDLE, None, require_signature=True), SignatureError)


def test_another_key_is_refused_naming_both_keys(key: Ed25519PrivateKey) -> None:
    err = _error(GOLDEN_BUNDLE, key.public_key())
    assert isinstance(err, SignatureError) and err.code == "bad-signature"
    assert "signed with key" in str(err)


def test_missing_signature_is_refused_when_a_key_is_given(tmp_path: Path) -> None:
    members = golden_members()
    del members[SIGNATURE_NAME]
    assert isinstance(_error(write_tar(tmp_path / "b.stainless", members)), MissingSignatureError)


@pytest.mark.parametrize("member", sorted(golden_members()))
def test_flipping_one_byte_in_any_member_is_refused(tmp_path: Path, member: str) -> None:
    members = golden_members()
    data = bytearray(members[member])
    if member == MANIFEST_NAME:  # keep it valid JSON: change one hex digit of a hash
        i = data.index(b'"files"') + data[data.index(b'"files"'):].index(b'": "') + 4
        data[i] = ord("0") if data[i] != ord("0") else ord("1")
        want: type[Exception] = SignatureError
    elif member == SIGNATURE_NAME:
        i = data.index(b'"signature":"') + 20
        data[i] = ord("A") if data[i] != ord("A") else ord("B")
        want = SignatureError
    else:
        data[len(data) // 2] ^= 0x01
        want = HashMismatchError
    members[member] = bytes(data)
    assert isinstance(_error(write_tar(tmp_path / "b.stainless", members)), want)


def _tar_with(path: Path, info: tarfile.TarInfo, data: bytes = b"") -> Path:
    members = golden_members()
    write_tar(path, members)
    with tarfile.open(path, "a") as tar:
        tar.addfile(info, io.BytesIO(data) if data else None)
    return path


def _info(name: str, kind: bytes = tarfile.REGTYPE, link: str = "", size: int = 0) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.size = kind, link, size
    return info


@pytest.mark.parametrize("info", [
    _info("/etc/evil", size=1), _info("../evil", size=1), _info("golden/../../evil", size=1),
    _info("evil", tarfile.SYMTYPE, "/etc/passwd"), _info("evil", tarfile.LNKTYPE, "model.fp32.onnx"),
    _info("evil", tarfile.CHRTYPE), _info("evil", tarfile.BLKTYPE), _info("evil", tarfile.FIFOTYPE),
], ids=["absolute", "dotdot", "nested-dotdot", "symlink", "hardlink", "chardev", "blockdev", "fifo"])
def test_unsafe_members_are_refused(tmp_path: Path, info: tarfile.TarInfo, key: Ed25519PrivateKey) -> None:
    work = tmp_path / "work"  # the bundle's directory and the install root, nothing else
    work.mkdir()
    path = _tar_with(work / "b.stainless", info, b"x" if info.size else b"")
    err = _error(path)
    assert isinstance(err, UnsafeMemberError) and err.code == "unsafe-member"
    with pytest.raises(UnsafeMemberError):  # install extracts: it must refuse before writing anything
        eb.install(path, work / "models", key.public_key())
    written = [p for p in tmp_path.rglob("*") if not p.is_dir()]
    assert written == [path] and not (tmp_path / "evil").exists()


def test_oversized_member_is_refused() -> None:
    err = _error(GOLDEN_BUNDLE, limits=eb.Limits(max_member_bytes=10_000))
    assert isinstance(err, OversizedMemberError)


def test_duplicate_member_is_refused(tmp_path: Path) -> None:
    assert isinstance(_error(_tar_with(tmp_path / "b.stainless", _info("model.fp32.onnx", size=1), b"x")),
                      UnsafeMemberError)


def test_unlisted_member_is_refused(tmp_path: Path) -> None:
    err = _error(_tar_with(tmp_path / "b.stainless", _info("extra.txt", size=1), b"x"))
    assert isinstance(err, HashMismatchError) and "extra.txt" in str(err)


def test_unknown_schema_version_is_refused(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    members = golden_members()
    path = resign(tmp_path / "b.stainless", members, {**manifest_doc(members), "schema_version": 99}, key)
    assert isinstance(_error(path, key.public_key()), SchemaVersionError)


def test_not_a_tar_and_no_manifest_are_format_errors(tmp_path: Path) -> None:
    (tmp_path / "junk.stainless").write_bytes(b"not a tar at all" * 100)
    assert isinstance(_error(tmp_path / "junk.stainless"), BundleFormatError)
    members = golden_members()
    del members[MANIFEST_NAME]
    assert isinstance(_error(write_tar(tmp_path / "b.stainless", members)), BundleFormatError)
    assert isinstance(_error(tmp_path / "missing.stainless"), BundleFormatError)


def test_recipe_mismatch_names_both_hashes() -> None:
    err = _error(GOLDEN_BUNDLE, expected_recipe_hash="0123456789abcdef")
    want = manifest_doc(golden_members())["recipe"]["hash"]
    assert isinstance(err, RecipeMismatchError) and want in str(err) and "0123456789abcdef" in str(err)
    assert eb.verify_bundle(GOLDEN_BUNDLE, expected_recipe_hash=want).ok


def _bad_golden(tmp_path: Path, key: Ed25519PrivateKey, version: str = "1.0.0") -> Path:
    members = golden_members()
    out = np.load(io.BytesIO(members["golden/output_000.npy"]))
    buf = io.BytesIO()
    np.save(buf, (1.0 - out).astype(np.float32))
    members["golden/output_000.npy"] = buf.getvalue()
    return resign(tmp_path / "bad.stainless", members, {**manifest_doc(members), "version": version}, key)


def test_golden_mismatch_fails_the_self_test(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    err = _error(_bad_golden(tmp_path, key), key.public_key())
    assert isinstance(err, SelfTestError) and "fp32" in str(err)


def _version(tmp_path: Path, key: Ed25519PrivateKey, version: str) -> Path:
    members = golden_members()
    return resign(tmp_path / f"tiny-{version}.stainless", members, {**manifest_doc(members), "version": version}, key)


def test_install_switches_current_and_rolls_back(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    root = tmp_path / "models"
    first = eb.install(_version(tmp_path, key, "1.0.0"), root, key.public_key())
    assert os.readlink(root / "current") == "versions/tiny-1.0.0"
    assert first.model_path("fp16").is_file() and len(first.golden_pairs()) == 1
    eb.install(_version(tmp_path, key, "1.1.0"), root, key.public_key())
    assert os.readlink(root / "current") == "versions/tiny-1.1.0"
    assert os.readlink(root / "previous") == "versions/tiny-1.0.0"
    assert eb.rollback(root).manifest.version == "1.0.0"
    assert eb.load_installed(root, "previous").manifest.version == "1.1.0"
    assert not [p for p in root.iterdir() if p.name.startswith(".staging")]


@pytest.mark.parametrize("case", ["tampered", "unsigned", "self-test"])
def test_failed_install_changes_nothing(tmp_path: Path, key: Ed25519PrivateKey, case: str) -> None:
    root = tmp_path / "models"
    eb.install(_version(tmp_path, key, "1.0.0"), root, key.public_key())
    before = sorted(str(p.relative_to(root)) for p in root.rglob("*"))
    if case == "tampered":
        members = golden_members()
        members["model.fp16.onnx"] = members["model.fp16.onnx"][:-1] + b"\0"
        doc = manifest_doc(members) | {"version": "2.0.0"}
        bad, want = resign(tmp_path / "t.stainless", members, doc, key, rehash=False), HashMismatchError
    elif case == "unsigned":
        members = golden_members()
        del members[SIGNATURE_NAME]
        bad, want = write_tar(tmp_path / "u.stainless", members), MissingSignatureError
    else:
        bad, want = _bad_golden(tmp_path, key, "2.0.0"), SelfTestError
    with pytest.raises(want):
        eb.install(bad, root, key.public_key())
    assert sorted(str(p.relative_to(root)) for p in root.rglob("*")) == before
    assert os.readlink(root / "current") == "versions/tiny-1.0.0"


def test_install_requires_a_key_by_default(tmp_path: Path) -> None:
    with pytest.raises(SignatureError):
        eb.install(GOLDEN_BUNDLE, tmp_path / "models")
    assert not (tmp_path / "models" / "current").exists()


def test_reinstalling_a_version_with_other_content_is_refused(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    root = tmp_path / "models"
    eb.install(_version(tmp_path, key, "1.0.0"), root, key.public_key())
    eb.install(_version(tmp_path, key, "1.0.0"), root, key.public_key())  # same content: allowed, a no-op
    members = golden_members()
    members["notes.txt"] = b"another build"
    doc = manifest_doc(members)
    doc["files"]["notes.txt"] = ""  # resign() fills in the hash
    with pytest.raises(InstallError, match="new version"):
        eb.install(resign(tmp_path / "other.stainless", members, doc, key), root, key.public_key())


def test_load_installed_detects_a_changed_file(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    root = tmp_path / "models"
    installed = eb.install(_version(tmp_path, key, "1.0.0"), root, key.public_key())
    installed.model_path("fp32").write_bytes(b"garbage")
    with pytest.raises(HashMismatchError):
        eb.load_installed(root)
    assert eb.load_installed(root, verify_hashes=False).manifest.version == "1.0.0"
    with pytest.raises(InstallError):
        eb.rollback(root)


def test_self_test_also_needs_the_ssim_gate(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    # noise within int8's absolute tolerance (max 0.25, p99 0.08) that still breaks the structure
    members = golden_members()
    out = np.load(io.BytesIO(members["golden/output_000.npy"]))
    noisy = np.clip(out + np.random.default_rng(0).uniform(-0.03, 0.03, out.shape), 0, 1).astype(np.float32)
    buf = io.BytesIO()
    np.save(buf, noisy)
    members["golden/output_000.npy"] = buf.getvalue()
    doc = manifest_doc(members)
    int8 = [m for m in doc["precision"]["models"] if m["precision"] == "int8"]
    doc["precision"] = {**doc["precision"], "models": int8, "preferred": "int8"}
    err = _error(resign(tmp_path / "n.stainless", members, doc, key), key.public_key())
    assert isinstance(err, SelfTestError) and "int8: SSIM vs fp32 0." in str(err) and "(≤ 0.25)" in str(err)
