"""Ed25519 signing keys for bundles: generate, load, sign.

``keygen`` writes ``stainless-signing.key`` (PKCS#8 PEM, mode 0600: keep it off devices) and
``stainless-signing.pub`` (SubjectPublicKeyInfo PEM: install it on devices as the trusted key).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge.device.manifest import canonical_json, key_id, signature_blob
from export.errors import KeyFileError

PRIVATE_NAME = "stainless-signing.key"
PUBLIC_NAME = "stainless-signing.pub"


def keygen(out_dir: Path, overwrite: bool = False) -> tuple[Path, Path, str]:
    """Write a new key pair into ``out_dir``; return (private path, public path, key id)."""
    out_dir = Path(out_dir)
    priv_path, pub_path = out_dir / PRIVATE_NAME, out_dir / PUBLIC_NAME
    if not overwrite and (priv_path.exists() or pub_path.exists()):
        raise KeyFileError(f"{out_dir} already holds a key pair; refusing to overwrite it (pass --force, and "
                           "re-sign every bundle the old key signed)")
    out_dir.mkdir(parents=True, exist_ok=True)
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    fd = os.open(priv_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    pub = key.public_key()
    pub_path.write_bytes(pub.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    return priv_path, pub_path, key_id(pub)


def load_private_key(path: Path) -> Ed25519PrivateKey:
    """The Ed25519 private key in the PEM file ``path``."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise KeyFileError(f"cannot read private key {path}: {exc.strerror}; make one with "
                           "`stainless-export keygen --out DIR`") from exc
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise KeyFileError(f"{path} is not an unencrypted PEM private key: {exc}") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyFileError(f"{path} holds a {type(key).__name__}; bundles are signed with Ed25519 keys")
    return key


def sign_manifest(doc: dict[str, Any], key: Ed25519PrivateKey) -> bytes:
    """The ``manifest.sig`` member for ``doc`` (signature over its canonical JSON)."""
    return signature_blob(key.sign(canonical_json(doc)), key.public_key())
