"""The bundle tar writer: manifest, signature, members; fixed metadata; atomic rename."""

from __future__ import annotations

import io
import json
import math
import os
import tarfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from edge.device.bundle import read_members, verify_bundle
from edge.device.manifest import MANIFEST_NAME, SIGNATURE_NAME, Manifest, is_semver
from export.errors import ExportError
from export.keys import sign_manifest


def _jsonable(value: Any) -> Any:
    """Plain JSON (tuples → lists, non-finite floats → None): the signature covers exactly this."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, np.generic):
        return _jsonable(value.item())
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)


def write_bundle(path: Path, members: dict[str, bytes], manifest: dict[str, Any],
                 key: Ed25519PrivateKey | None) -> None:
    """Write the tar: manifest, signature (if ``key``), then members sorted; fixed metadata; atomic rename."""
    doc = json.loads(json.dumps(_jsonable(manifest)))
    Manifest.from_dict(doc)  # the writer never produces a bundle the reader would refuse
    entries = {MANIFEST_NAME: json.dumps(doc, indent=1, sort_keys=True, ensure_ascii=False).encode("utf-8")}
    if key is not None:
        entries[SIGNATURE_NAME] = sign_manifest(doc, key)
    entries.update(sorted(members.items()))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in entries.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, int(doc.get("created_unix", 0))
            tar.addfile(info, io.BytesIO(data))
    os.replace(tmp, path)


def open_for_new_version(bundle: Path, version: str, public_key: Path | Ed25519PublicKey | None = None
                         ) -> tuple[Manifest, dict[str, bytes]]:
    """``bundle`` verified (its signature too when ``public_key`` is given) for a new ``version``: its
    manifest and its members without manifest and signature."""
    if not is_semver(version):
        raise ExportError(f"version {version!r}: expected a semantic version like 1.2.0")
    report = verify_bundle(bundle, public_key, require_signature=public_key is not None, run_self_test=False)
    report.raise_for_failure()
    if report.manifest is None:  # a passed report always holds its manifest
        raise ExportError(f"{bundle}: manifest not read")
    members = {k: v for k, v in read_members(bundle).items() if k not in (MANIFEST_NAME, SIGNATURE_NAME)}
    return report.manifest, members


def open_for_new_content(bundle: Path, version: str, public_key: Path | Ed25519PublicKey | None = None
                         ) -> tuple[dict[str, Any], dict[str, bytes]]:
    """:func:`open_for_new_version` for a bundle whose content will change (a style, a precision added):
    its own version is refused. Returns a copy of its manifest document (``files`` copied too) and its
    members, both for the caller to change, then :func:`write_new_version`."""
    manifest, members = open_for_new_version(bundle, version, public_key)
    if version == manifest.version:
        raise ExportError(f"{bundle} already is version {version}; a bundle with other content needs a new version")
    return {**manifest.doc, "files": dict(manifest.doc["files"])}, members


def write_new_version(doc: dict[str, Any], members: dict[str, bytes], version: str, key: Ed25519PrivateKey | None,
                      out: Path) -> Path:
    """Write ``doc`` and ``members`` as ``version``, created now, signed by ``key``; ``out`` is a file or
    a directory (→ ``NAME-VERSION.stainless``). Returns the path written."""
    now = datetime.now(UTC).replace(microsecond=0)
    doc = {**doc, "version": version, "created": now.isoformat().replace("+00:00", "Z"),
           "created_unix": int(now.timestamp())}
    out = Path(out)
    path = out / f"{doc['name']}-{version}.stainless" if out.is_dir() else out
    write_bundle(path, members, doc, key)
    return path


def resign_bundle(bundle: Path, version: str, key: Ed25519PrivateKey, out: Path,
                  public_key: Path | Ed25519PublicKey | None = None) -> Path:
    """``bundle`` (verified; its signature too when ``public_key`` is given) as ``version``, signed by ``key``:
    every member byte for byte, only the manifest's version changes (a soak's update, a re-keyed fleet)."""
    manifest, members = open_for_new_version(bundle, version, public_key)
    write_bundle(Path(out), members, {**manifest.doc, "version": version}, key)
    return Path(out)
