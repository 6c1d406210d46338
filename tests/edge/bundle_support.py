"""Helpers for the bundle tests: the stored golden bundle, and rewriting it member by member."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge.bundle import read_members, sha256
from edge.manifest import MANIFEST_NAME, SIGNATURE_NAME, canonical_json, signature_blob

DATA = Path(__file__).parents[1] / "data" / "export"
GOLDEN_BUNDLE = DATA / "tiny-1.0.0.stainless"
GOLDEN_PUB = DATA / "tiny.pub"


def golden_members() -> dict[str, bytes]:
    return read_members(GOLDEN_BUNDLE)


def manifest_doc(members: dict[str, bytes]) -> dict[str, Any]:
    return json.loads(members[MANIFEST_NAME])


def write_tar(path: Path, members: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def resign(path: Path, members: dict[str, bytes], doc: dict[str, Any], key: Ed25519PrivateKey,
           rehash: bool = True) -> Path:
    """Write ``members`` with manifest ``doc`` (hashes recomputed unless ``rehash`` is off), signed by ``key``."""
    members = dict(members)
    if rehash:
        doc = {**doc, "files": {n: sha256(members[n]) for n in doc["files"]}}
    members[MANIFEST_NAME] = json.dumps(doc).encode()
    members[SIGNATURE_NAME] = signature_blob(key.sign(canonical_json(doc)), key.public_key())
    return write_tar(path, members)
