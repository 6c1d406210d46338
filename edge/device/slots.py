"""Install slots and the version record: what ``flash`` writes under the install root (torch-free).

::

    ROOT/versions/NAME-VERSION/...   one slot per installed bundle (see :mod:`edge.device.bundle`)
    ROOT/current  -> versions/NAME-VERSION     the committed model
    ROOT/previous -> versions/OLD-VERSION      what ``rollback`` returns to
    ROOT/record.json                           the version record (below)

The version record keeps, per bundle name, the highest version ever committed, and per slot when
it was installed, by which signer, its creation time and its self-test results. A bundle older than
the recorded highest of its name (a replayed old signed bundle) is refused with ``downgrade``
unless forced. Every refusal is a :class:`FlashRefused` with a stable :attr:`~FlashRefused.code`
(:data:`CODES`) and leaves the root as it was: nothing is written before every check passed, and
a slot made for a flash that fails later is removed again (:func:`discard_slot`).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from edge.device import bundle as bundles
from edge.device import selftest
from edge.device.config import ModelConfig
from edge.device.errors import BundleError, SignatureError
from edge.device.manifest import MANIFEST_NAME, SIGNATURE_NAME, Manifest, key_id, load_public_key, verify_signature
from edge.device.opsconfig import FlashConfig

log = logging.getLogger(__name__)

RECORD_NAME = "record.json"
RECORD_SCHEMA = 1

#: The refusal codes of ``flash`` (and of :func:`install`), from the bundle errors' codes.
CODES: dict[str, str] = {
    "format": "bad_bundle", "unsafe-member": "bad_bundle", "oversized-member": "too_large",
    "schema-version": "bad_bundle", "manifest": "bad_bundle", "hash-mismatch": "hash_mismatch",
    "bad-signature": "bad_signature", "missing-signature": "unsigned", "recipe-mismatch": "recipe_mismatch",
    "model-load": "self_test_failed", "self-test": "self_test_failed", "install": "install_failed",
}


class FlashRefused(BundleError):
    """A bundle refused for installing / flashing; ``code`` is one of ``bad_bundle``, ``too_large``,
    ``hash_mismatch``, ``bad_signature``, ``unsigned``, ``recipe_mismatch``, ``incompatible``,
    ``downgrade``, ``self_test_failed``, ``install_failed``, ``no_install_root``."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def refusal(exc: BundleError) -> FlashRefused:
    """``exc`` as a :class:`FlashRefused` with its flash code."""
    if isinstance(exc, FlashRefused):
        return exc
    refused = FlashRefused(CODES.get(exc.code, "bad_bundle"), str(exc))
    refused.__cause__ = exc
    return refused


# --- trust ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class TrustPolicy:
    """Who may sign a bundle for this device, and whether unsigned bundles are accepted."""

    keys: tuple[Ed25519PublicKey, ...] = ()
    allow_unsigned: bool = False

    @classmethod
    def from_config(cls, flash: FlashConfig, model: ModelConfig) -> TrustPolicy:
        """``[flash] trusted_keys`` (or ``model.public_key`` when that list is empty), ``[flash] allow_unsigned``."""
        files = flash.trusted_keys or ((model.public_key,) if model.public_key else ())
        return cls(tuple(load_public_key(Path(f)) for f in files), flash.allow_unsigned)

    def check(self, doc: dict[str, Any], members: dict[str, bytes]) -> str:
        """The signer's key id, or ``"unsigned"``; raises :class:`FlashRefused` (``unsigned``, ``bad_signature``)."""
        blob = members.get(SIGNATURE_NAME)
        if blob is None:
            if self.allow_unsigned:
                return "unsigned"
            raise FlashRefused("unsigned", "the bundle holds no manifest.sig and [flash] allow_unsigned is off; "
                                           "sign it (`stainless-export bundle --key ...`)")
        if not self.keys:
            if self.allow_unsigned:
                return "unsigned"
            raise FlashRefused("bad_signature", "the bundle is signed but this device trusts no key; set [flash] "
                                                "trusted_keys (or model.public_key) to the signer's .pub file")
        errors = []
        for key in self.keys:
            try:
                return verify_signature(doc, blob, key)
            except SignatureError as exc:
                errors.append(str(exc))
        raise FlashRefused("bad_signature", f"no trusted key ({', '.join(key_id(k) for k in self.keys)}) verifies "
                                            f"the signature: {errors[-1]}")


# --- versions ------------------------------------------------------------------------------------

_SEMVER = re.compile(r"(\d+)\.(\d+)\.(\d+)(?:-([0-9A-Za-z.-]+))?(?:\+[0-9A-Za-z.-]+)?")


def version_key(version: str) -> tuple[Any, ...]:
    """Semantic-version precedence as a sortable key (build metadata ignored; ``1.0.0-rc.1 < 1.0.0``)."""
    m = _SEMVER.fullmatch(version)
    if m is None:
        raise ValueError(f"{version!r} is not a semantic version like 1.2.0")
    core = tuple(int(m.group(i)) for i in (1, 2, 3))
    if m.group(4) is None:
        return (*core, 1, ())
    ids = tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in m.group(4).split("."))
    return (*core, 0, ids)


@dataclass
class VersionRecord:
    """``ROOT/record.json``: the highest committed version per bundle name, and what is known per slot."""

    highest: dict[str, str]
    slots: dict[str, dict[str, Any]]

    @classmethod
    def load(cls, root: Path) -> VersionRecord:
        path = Path(root) / RECORD_NAME
        if not path.exists():
            return cls({}, {})
        try:
            doc = json.loads(path.read_text())
            return cls(dict(doc["highest"]), dict(doc["slots"]))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise FlashRefused("install_failed", f"{path} is unreadable ({exc}); it guards against downgrades, so "
                                                 "it is not replaced silently: restore or remove it") from exc

    def save(self, root: Path) -> None:
        """Write atomically (temporary file, fsync, rename)."""
        path = Path(root) / RECORD_NAME
        tmp = path.with_name(f".{RECORD_NAME}.tmp")
        with open(tmp, "w") as fh:
            json.dump({"schema_version": RECORD_SCHEMA, "highest": self.highest, "slots": self.slots}, fh,
                      indent=1, sort_keys=True)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)

    def check(self, manifest: Manifest, force: bool) -> None:
        """Refuse (``downgrade``) a version below the highest committed of its name, unless ``force``."""
        best = self.highest.get(manifest.name)
        if best is None or force or version_key(manifest.version) >= version_key(best):
            return
        raise FlashRefused("downgrade", f"{manifest.name} {manifest.version} is older than {best}, the highest "
                                        "version this device has committed; a replayed old bundle is refused "
                                        "(flash with force to downgrade on purpose, or use rollback)")

    def commit(self, manifest: Manifest, signer: str, self_test: list[str]) -> None:
        best = self.highest.get(manifest.name)
        if best is None or version_key(manifest.version) > version_key(best):
            self.highest[manifest.name] = manifest.version
        self.slots[manifest.slug] = {
            "name": manifest.name, "version": manifest.version, "created": manifest.doc.get("created", ""),
            "installed": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "signer": signer,
            "self_test": list(self_test)}


# --- candidates and slots ------------------------------------------------------------------------

@dataclass(frozen=True)
class Candidate:
    """A bundle read into memory whose archive, manifest, signature and hashes passed."""

    manifest: Manifest
    members: dict[str, bytes]
    signer: str


def read_candidate(source: Path | bytes, trust: TrustPolicy, limits: bundles.Limits | None = None) -> Candidate:
    """Read and check a bundle file or its bytes; raises :class:`FlashRefused`. Writes nothing."""
    limits = limits or bundles.Limits()
    try:
        if isinstance(source, bytes):
            with tempfile.NamedTemporaryFile(suffix=bundles.SUFFIX) as fh:
                fh.write(source)
                fh.flush()
                members = bundles.read_members(Path(fh.name), limits)
        else:
            members = bundles.read_members(Path(source), limits)
        if MANIFEST_NAME not in members:
            raise FlashRefused("bad_bundle", f"no {MANIFEST_NAME} in the archive; not a stainless bundle")
        doc = Manifest.parse_json(members[MANIFEST_NAME])
        manifest = Manifest.from_dict(doc)
        signer = trust.check(doc, members)
        bundles.check_hashes(manifest, members)
    except BundleError as exc:
        raise refusal(exc) from exc
    return Candidate(manifest, members, signer)


def check_compatible(manifest: Manifest, recipe_hash: str, patch_size: int, in_channels: int) -> None:
    """Refuse a bundle the running acquisition cannot feed (another recipe, patch size or channel count)."""
    if manifest.recipe_hash != recipe_hash:
        raise FlashRefused("recipe_mismatch", f"{manifest.slug} expects recipe {manifest.recipe_id!r} hash "
                                              f"{manifest.recipe_hash}; the daemon captures hash {recipe_hash}; "
                                              "flash a bundle trained on the device's recipe")
    if (manifest.patch_size, manifest.in_channels) != (patch_size, in_channels):
        raise FlashRefused("incompatible", f"{manifest.slug} takes {manifest.in_channels} channels of "
                                           f"{manifest.patch_size} px patches; the daemon crops {in_channels} "
                                           f"channels of {patch_size} px; restart the daemon with it instead")


def stage_slot(root: Path, cand: Candidate) -> tuple[Path, bool]:
    """Write ``cand`` into ``ROOT/versions/NAME-VERSION`` (re-hashed from disk); returns the slot and
    whether it was made now (False: the same content was installed already)."""
    root = Path(root)
    (root / "versions").mkdir(parents=True, exist_ok=True)
    final = root / "versions" / cand.manifest.slug
    existed = final.exists()
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=root))
    try:
        bundles._write_members(staging, cand.members)
        bundles.check_hashes(cand.manifest, {n: (staging / n).read_bytes() for n in cand.members})
        placed = bundles._place(staging, final, cand.manifest)
    except BundleError as exc:
        raise refusal(exc) from exc
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return placed, not existed


def discard_slot(slot: Path, created: bool) -> None:
    """Remove a slot made for a flash that did not commit (a slot that existed before stays)."""
    if created and slot.exists():
        shutil.rmtree(slot)


def commit_slot(root: Path, cand: Candidate, self_test: list[str]) -> None:
    """Make the slot of ``cand`` ``current`` (the old one ``previous``) and record it."""
    root = Path(root)
    record = VersionRecord.load(root)
    target = f"versions/{cand.manifest.slug}"
    current = root / "current"
    old = os.readlink(current) if current.is_symlink() else None
    bundles._switch(current, target)
    if old is not None and old != target:
        bundles._switch(root / "previous", old)
    record.commit(cand.manifest, cand.signer, self_test)
    record.save(root)


def install(source: Path | bytes, root: Path, trust: TrustPolicy, *, force: bool = False,
            compatible: Callable[[Manifest], None] | None = None,
            self_test: Callable[[bundles.InstalledBundle], list[str]] | None = None) -> bundles.InstalledBundle:
    """Check, stage, self-test (ONNX Runtime golden test unless ``self_test`` is given) and commit a bundle.

    Raises :class:`FlashRefused`; the root is then as it was."""
    root = Path(root)
    cand = read_candidate(source, trust)
    if compatible is not None:
        compatible(cand.manifest)
    with bundles._locked(root):
        VersionRecord.load(root).check(cand.manifest, force)
        slot, created = stage_slot(root, cand)
        installed = bundles.InstalledBundle(slot, cand.manifest)
        try:
            results = (self_test(installed) if self_test is not None else
                       [g.describe() for g in selftest.self_test(cand.manifest, lambda n: (slot / n).read_bytes())])
            commit_slot(root, cand, results)
        except BundleError as exc:
            discard_slot(slot, created)
            raise refusal(exc) from exc
        except BaseException:
            discard_slot(slot, created)
            raise
    log.info("installed %s (signer %s) into %s", cand.manifest.slug, cand.signer, slot)
    return installed


def rollback(root: Path) -> bundles.InstalledBundle:
    """Swap ``current`` and ``previous`` (the version record keeps its highest versions)."""
    return bundles.rollback(Path(root))


def models(root: Path) -> dict[str, Any]:
    """Slots, ``current``, ``previous`` and what the record knows of each (installed time, signer, self-test)."""
    root = Path(root)
    record = VersionRecord.load(root)

    def link(name: str) -> str | None:
        path = root / name
        return Path(os.readlink(path)).name if path.is_symlink() else None

    slots = []
    for d in sorted((root / "versions").iterdir()) if (root / "versions").is_dir() else []:
        if not (d / MANIFEST_NAME).is_file():
            continue
        known = record.slots.get(d.name, {})
        try:
            m = Manifest.from_dict(Manifest.parse_json((d / MANIFEST_NAME).read_bytes()))
            name, version, created = m.name, m.version, m.doc.get("created", "")
        except BundleError:
            name, version, created = known.get("name", "?"), known.get("version", "?"), known.get("created", "")
        slots.append({"slot": d.name, "name": name, "version": version, "created": created,
                      "installed": known.get("installed", ""), "signer": known.get("signer", ""),
                      "self_test": known.get("self_test", [])})
    return {"root": str(root), "current": link("current"), "previous": link("previous"),
            "highest": dict(record.highest), "slots": slots}
