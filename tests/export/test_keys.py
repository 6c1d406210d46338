"""Key generation and loading."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ec import SECP256R1, generate_private_key

from edge.device.manifest import canonical_json, load_public_key, verify_signature
from export.errors import KeyFileError
from export.keys import keygen, load_private_key, sign_manifest


def test_keygen_writes_a_private_key_only_the_owner_reads(tmp_path: Path) -> None:
    priv, pub, kid = keygen(tmp_path / "k")
    assert stat.S_IMODE(priv.stat().st_mode) == 0o600
    key = load_private_key(priv)
    blob = sign_manifest({"a": 1}, key)
    assert verify_signature({"a": 1}, blob, load_public_key(pub)) == kid
    assert canonical_json({"a": 1}) == b'{"a":1}'
    with pytest.raises(KeyFileError, match="overwrite"):
        keygen(tmp_path / "k")
    assert keygen(tmp_path / "k", overwrite=True)[2] != kid


def test_wrong_key_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match="keygen"):
        load_private_key(tmp_path / "missing.key")
    (tmp_path / "junk.key").write_text("junk")
    with pytest.raises(KeyFileError, match="PEM"):
        load_private_key(tmp_path / "junk.key")
    ec = generate_private_key(SECP256R1()).private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                         serialization.NoEncryption())
    (tmp_path / "ec.key").write_bytes(ec)
    with pytest.raises(KeyFileError, match="Ed25519"):
        load_private_key(tmp_path / "ec.key")
