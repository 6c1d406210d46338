"""Model bundles: read, verify and install ``NAME-VERSION.stainless`` files (torch-free).

A bundle is a tar holding ``manifest.json``, ``manifest.sig`` (Ed25519 over the canonical manifest:
sorted keys, no spaces, UTF-8), the ONNX files and golden input/output pairs (``.npy``). The manifest
lists the sha256 of every other member. :func:`verify_bundle` runs the checks in order and reports
each; :func:`install` verifies, extracts into a staging directory, re-hashes, runs the golden
self-test with ONNX Runtime and only then switches the ``current`` symlink (``previous`` keeps the
old target for :func:`rollback`)::

    ROOT/versions/NAME-VERSION/...   extracted bundles
    ROOT/current  -> versions/NAME-VERSION
    ROOT/previous -> versions/OLD-VERSION

Members are read from the tar into memory after their headers pass :func:`check_member`; nothing is
ever extracted with ``tarfile.extract``, so links, devices and path tricks never reach the disk.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import shutil
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from numpy.typing import NDArray

from edge.device.errors import (
    BundleError,
    BundleFormatError,
    HashMismatchError,
    InstallError,
    MissingSignatureError,
    OversizedMemberError,
    RecipeMismatchError,
    SignatureError,
    UnsafeMemberError,
)
from edge.device.manifest import (
    MANIFEST_NAME,
    SIGNATURE_NAME,
    GoldenResult,
    Manifest,
    key_id,
    load_public_key,
    verify_signature,
)
from edge.device.selftest import golden_pairs, self_test

log = logging.getLogger(__name__)

SUFFIX = ".stainless"


@dataclass(frozen=True)
class Limits:
    """What a reader accepts: bytes per member, bytes in total, number of members."""

    max_member_bytes: int = 1 << 30
    max_total_bytes: int = 4 << 30
    max_members: int = 256


# --- reading the archive -------------------------------------------------------------------------

def check_member(info: tarfile.TarInfo, limits: Limits) -> None:
    """Refuse a tar member that could escape the extraction directory or exhaust memory."""
    name = info.name
    path = PurePosixPath(name)
    if name.startswith("/") or path.is_absolute() or (len(name) > 1 and name[1] == ":"):
        raise UnsafeMemberError(f"tar member {name!r} has an absolute path; bundle members are relative")
    if ".." in path.parts or "\\" in name or any(p in ("", ".") for p in name.split("/")):
        raise UnsafeMemberError(f"tar member {name!r} has a '..', '.', empty or backslash path component")
    if info.issym() or info.islnk():
        raise UnsafeMemberError(f"tar member {name!r} is a link (to {info.linkname!r}); bundles hold regular files")
    if info.ischr() or info.isblk() or info.isfifo():
        raise UnsafeMemberError(f"tar member {name!r} is a device node or FIFO; bundles hold regular files")
    if not (info.isreg() or info.isdir()):
        raise UnsafeMemberError(f"tar member {name!r} has tar type {info.type!r}; bundles hold regular files")
    if info.size > limits.max_member_bytes:
        raise OversizedMemberError(f"tar member {name!r} is {info.size} bytes; the limit is "
                                   f"{limits.max_member_bytes} (raise Limits.max_member_bytes if intended)")


def read_members(bundle: Path, limits: Limits = Limits()) -> dict[str, bytes]:
    """Every regular member of the tar at ``bundle``, by name, after :func:`check_member`."""
    members: dict[str, bytes] = {}
    total = 0
    try:
        with tarfile.open(bundle, mode="r:*") as tar:
            for info in tar:
                check_member(info, limits)
                if info.isdir():
                    continue
                if info.name in members:
                    raise UnsafeMemberError(f"tar member {info.name!r} appears twice; a later copy would shadow "
                                            "the first")
                total += info.size
                if len(members) >= limits.max_members or total > limits.max_total_bytes:
                    raise OversizedMemberError(f"{bundle}: more than {limits.max_members} members or "
                                               f"{limits.max_total_bytes} bytes in total")
                fh = tar.extractfile(info)
                members[info.name] = fh.read() if fh is not None else b""
    except FileNotFoundError:
        raise BundleFormatError(f"bundle {bundle} not found") from None
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise BundleFormatError(f"{bundle} is not a readable tar bundle ({exc}); expected a "
                                f"NAME-VERSION{SUFFIX} written by `stainless-export bundle`") from exc
    return members


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def check_hashes(manifest: Manifest, members: dict[str, bytes]) -> None:
    """Every member listed with the right sha256, and nothing else in the archive."""
    present = set(members) - {MANIFEST_NAME, SIGNATURE_NAME}
    unlisted = sorted(present - set(manifest.files))
    if unlisted:
        raise HashMismatchError(f"member(s) {unlisted} are not listed in the manifest; the bundle was altered")
    missing = sorted(set(manifest.files) - present)
    if missing:
        raise HashMismatchError(f"member(s) {missing} listed in the manifest are missing from the archive")
    for name, want in sorted(manifest.files.items()):
        found = sha256(members[name])
        if found != want:
            raise HashMismatchError(f"member {name!r}: sha256 {found}, the manifest says {want}; the file was "
                                    "altered or corrupted — fetch the bundle again")


def check_recipe(manifest: Manifest, expected_hash: str) -> None:
    """Refuse a bundle trained on another stack recipe than the one the device captures."""
    if manifest.recipe_hash != expected_hash:
        raise RecipeMismatchError(
            f"bundle {manifest.name} {manifest.version} expects recipe {manifest.recipe_id!r} with hash "
            f"{manifest.recipe_hash}; this device captures recipe hash {expected_hash}; install a bundle trained "
            "on the device's recipe or change the device's capture recipe")


# --- verification --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Check:
    """One verification step: ``ok`` is True (passed), False (failed) or None (not run)."""

    name: str
    ok: bool | None
    detail: str
    code: str = ""


@dataclass
class VerifyReport:
    """What :func:`verify_bundle` found, step by step; the first failure stops later steps."""

    bundle: str
    checks: list[Check] = field(default_factory=list)
    manifest: Manifest | None = None
    error: BundleError | None = None
    golden: list[GoldenResult] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.error is None

    def raise_for_failure(self) -> None:
        if self.error is not None:
            raise self.error

    def to_dict(self) -> dict[str, Any]:
        return {"bundle": self.bundle, "ok": self.ok,
                "error": None if self.error is None else {"code": self.error.code, "message": str(self.error)},
                "name": self.manifest.name if self.manifest else None,
                "version": self.manifest.version if self.manifest else None,
                "checks": [c.__dict__ for c in self.checks],
                "golden": [{**g.__dict__, "tolerance": g.tolerance.__dict__, "passed": g.passed}
                           for g in self.golden]}


def verify_bundle(bundle: Path, public_key: Path | bytes | Ed25519PublicKey | None = None, *,
                  require_signature: bool = False, expected_recipe_hash: str | None = None,
                  run_self_test: bool = True, limits: Limits = Limits()) -> VerifyReport:
    """Check archive safety, manifest, signature, hashes, recipe, ONNX loading and golden outputs.

    Never raises a :class:`BundleError`: failures land in the report (``report.raise_for_failure()``).
    """
    report, _ = _verify(Path(bundle), public_key, require_signature, expected_recipe_hash, run_self_test, limits)
    return report


def _verify(bundle: Path, public_key: Path | bytes | Ed25519PublicKey | None, require_signature: bool,
            expected_recipe_hash: str | None, run_self_test: bool,
            limits: Limits) -> tuple[VerifyReport, dict[str, bytes]]:
    report = VerifyReport(str(bundle))
    members: dict[str, bytes] = {}
    doc: dict[str, Any] = {}

    def archive() -> str:
        members.update(read_members(bundle, limits))
        return f"{len(members)} regular members, no links / devices / unsafe paths"

    def manifest() -> str:
        if MANIFEST_NAME not in members:
            raise BundleFormatError(f"{bundle} has no {MANIFEST_NAME}; not a stainless bundle")
        doc.update(Manifest.parse_json(members[MANIFEST_NAME]))
        report.manifest = Manifest.from_dict(doc)
        return f"{report.manifest.name} {report.manifest.version}, schema {report.manifest.schema_version}"

    def signature() -> str | None:
        if public_key is None:
            if require_signature:
                raise SignatureError("a signed bundle is required but no trusted public key was given; pass "
                                     "the .pub file of the signing key")
            return None
        key = load_public_key(public_key)
        if SIGNATURE_NAME not in members:
            raise MissingSignatureError(f"{bundle} holds no {SIGNATURE_NAME}; the trusted key {key_id(key)} "
                                        "requires a signed bundle (`stainless-export bundle --key ...`)")
        return f"signed by trusted key {verify_signature(doc, members[SIGNATURE_NAME], key)}"

    def hashes() -> str:
        check_hashes(_manifest_of(report), members)
        return f"sha256 of {len(_manifest_of(report).files)} members match"

    def recipe() -> str | None:
        if expected_recipe_hash is None:
            return None
        check_recipe(_manifest_of(report), expected_recipe_hash)
        return f"recipe {_manifest_of(report).recipe_id} hash {expected_recipe_hash} matches the device"

    def golden() -> str | None:
        if not run_self_test:
            return None
        report.golden = self_test(_manifest_of(report), members.__getitem__)
        return "; ".join(g.describe() for g in report.golden)

    steps: list[tuple[str, Callable[[], str | None]]] = [
        ("archive", archive), ("manifest", manifest), ("signature", signature), ("hashes", hashes),
        ("recipe", recipe), ("self-test", golden)]
    for name, step in steps:
        if report.error is not None:
            report.checks.append(Check(name, None, "not run: an earlier check failed"))
            continue
        try:
            detail = step()
        except BundleError as exc:
            report.error = exc
            report.checks.append(Check(name, False, str(exc), exc.code))
            continue
        report.checks.append(Check(name, True if detail is not None else None, detail or "not checked (not asked for)"))
    if report.error is None and report.checks[2].ok is None:
        log.warning("%s: signature not checked (no public key given)", bundle)
    return report, members


def _manifest_of(report: VerifyReport) -> Manifest:
    if report.manifest is None:  # the manifest step runs first; later steps only run if it passed
        raise BundleFormatError(f"{report.bundle}: manifest not read")
    return report.manifest


# --- installing ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class InstalledBundle:
    """An extracted, verified bundle on disk."""

    path: Path
    manifest: Manifest

    def model_path(self, precision: str) -> Path:
        """The ONNX file of ``precision`` (``fp32``, ``fp16``, ``int8``)."""
        return self.path / self.manifest.model(precision).file

    def golden_pairs(self) -> list[tuple[NDArray[np.float32], NDArray[np.float32]]]:
        """The golden (input, output) pairs, for self-testing another backend (e.g. a TensorRT engine)."""
        return golden_pairs(self.manifest, lambda name: (self.path / name).read_bytes())


@contextmanager
def _locked(root: Path) -> Iterator[None]:
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _write_members(dest: Path, members: dict[str, bytes]) -> None:
    for name, data in members.items():
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(target, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())


def _switch(link: Path, target: str) -> None:
    """Point ``link`` at ``target`` atomically (symlink beside it, then rename over it)."""
    tmp = link.with_name(f".{link.name}.tmp")
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    os.symlink(target, tmp)
    os.replace(tmp, link)


def install(bundle: Path, root: Path, public_key: Path | bytes | Ed25519PublicKey | None = None, *,
            require_signature: bool = True, expected_recipe_hash: str | None = None,
            limits: Limits = Limits()) -> InstalledBundle:
    """Verify ``bundle``, extract it under ``root/versions`` and make it ``root/current``.

    Nothing changes under ``root`` unless every check and the golden self-test pass; the previous
    ``current`` becomes ``previous`` (see :func:`rollback`).
    """
    root = Path(root)
    report, members = _verify(Path(bundle), public_key, require_signature, expected_recipe_hash, False, limits)
    report.raise_for_failure()
    manifest = _manifest_of(report)
    with _locked(root):
        (root / "versions").mkdir(exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=root))
        try:
            _write_members(staging, members)
            check_hashes(manifest, {n: (staging / n).read_bytes() for n in members})
            self_test(manifest, lambda name: (staging / name).read_bytes())
            final = _place(staging, root / "versions" / manifest.slug, manifest)
        finally:
            if staging.exists():
                shutil.rmtree(staging)
        current = root / "current"
        old = os.readlink(current) if current.is_symlink() else None
        _switch(current, f"versions/{final.name}")
        if old is not None and old != f"versions/{final.name}":
            _switch(root / "previous", old)
    log.info("installed %s %s into %s", manifest.name, manifest.version, final)
    return InstalledBundle(final, manifest)


def _place(staging: Path, final: Path, manifest: Manifest) -> Path:
    if final.exists():
        existing = Manifest.from_dict(Manifest.parse_json((final / MANIFEST_NAME).read_bytes()))
        if existing.files != manifest.files:
            raise InstallError(f"{manifest.name} {manifest.version} is already installed at {final} with other "
                               "content; give the new bundle a new version")
        return final
    os.rename(staging, final)
    return final


def load_installed(root: Path, link: str = "current", verify_hashes: bool = True) -> InstalledBundle:
    """The bundle ``root/<link>`` points at, its member hashes re-checked unless ``verify_hashes`` is off."""
    path = Path(root) / link
    if not path.is_symlink():
        raise InstallError(f"{path} does not exist; install a bundle first (`edge.device.bundle.install`)")
    target = path.resolve()
    try:
        manifest = Manifest.from_dict(Manifest.parse_json((target / MANIFEST_NAME).read_bytes()))
    except OSError as exc:
        raise InstallError(f"{target} holds no readable {MANIFEST_NAME}: {exc.strerror}") from exc
    if verify_hashes:
        files: dict[str, bytes] = {}
        for name in manifest.files:
            try:
                files[name] = (target / name).read_bytes()
            except OSError:
                raise HashMismatchError(f"installed bundle {target} lost member {name!r}; reinstall it") from None
        check_hashes(manifest, files)
    return InstalledBundle(target, manifest)


def rollback(root: Path) -> InstalledBundle:
    """Swap ``current`` and ``previous``; return the bundle that is current now."""
    root = Path(root)
    with _locked(root):
        prev, cur = root / "previous", root / "current"
        if not prev.is_symlink() or not cur.is_symlink():
            raise InstallError(f"{root}: nothing to roll back to (needs both current and previous links)")
        old_current, old_previous = os.readlink(cur), os.readlink(prev)
        _switch(cur, old_previous)
        _switch(prev, old_current)
    return load_installed(root)
