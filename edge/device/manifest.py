"""The manifest of a model bundle: schema, validation, canonical form, signature, golden tolerances.

``manifest.json`` (schema version 1)::

    schema_version  1
    name, version   bundle name ([a-z0-9._-]) and semantic version ("1.4.0", "2.0.0-rc.1")
    created         ISO-8601 UTC time of export
    recipe          {"id", "hash", "channels": [...]}  the stack recipe, channels in capture order
    patch_size      P (pixels)
    input           {"name", "shape": ["batch", I·C, P, P], "dtype": "float32", "layout", "normalisation"}
    output          {"name", "shape": ["batch", 3, P, P], "dtype": "float32", "range": [0, 1], "layout"}
    stains          stain outputs produced, e.g. ["romanowsky-mgg"]
    precision       {"preferred": "fp16", "policy": text, "fp32_nodes": [...],
                     "models": [{"precision", "file", "tolerance": {"max_abs", "p99_abs"}}, ...]}
    batch_profile   {"min", "opt", "max"}  the TensorRT optimisation profile
    min_tensorrt    "10.0"
    onnx            {"opset", "ir_version", "producer"}
    files           {member: sha256} of every member but manifest.json and manifest.sig
    training        {"config", "metrics", "model", "epoch", "step"}  from the checkpoint
    golden          [{"input": "golden/x.npy", "output": "golden/y.npy"}]  float32 arrays
    styles          optional: extra named stains, each a model run on the generator's RGB output:
                    [{"name", "payload": "stained:<name>", "file", "precision": "fp32",
                      "input": {"name", "shape": ["batch", 3, P, P], "source": "output"},
                      "output": {"name", "shape", "range"}, "tolerance": {"max_abs", "p99_abs"},
                      "golden": {"input", "output"}, "training": {...}}]   (absent = none)
    openvino        optional: {"int8": {"model": xml member, "weights": bin member, "quantisation": {...}}}
                    an OpenVINO IR quantised to int8 (:mod:`export.openvino_int8`), present only when
                    ``quality_gate["openvino-int8"]`` passed it

The signature covers :func:`canonical_json` of the parsed manifest (sorted keys, no spaces, UTF-8),
so whitespace in ``manifest.json`` does not matter but every value does.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from numpy.typing import NDArray

from edge.device.errors import ManifestError, SchemaVersionError, SelfTestError, SignatureError

SCHEMA_VERSION = 1
SUPPORTED_SCHEMA_VERSIONS = (1,)
MANIFEST_NAME = "manifest.json"
SIGNATURE_NAME = "manifest.sig"
PRECISIONS = ("fp32", "fp16", "int8")
#: The quality-gate variant (and backend name) of the OpenVINO int8 IR (manifest ``openvino.int8``).
OPENVINO_INT8 = "openvino-int8"

_SEMVER = re.compile(r"(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?")
_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
_STYLE = re.compile(r"[a-z0-9][a-z0-9._-]{0,31}")
_MEMBER = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]*(/[A-Za-z0-9_][A-Za-z0-9._-]*)*")


def canonical_json(doc: Any) -> bytes:
    """The signed form: sorted keys, no spaces, UTF-8 (non-ASCII kept as is)."""
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def is_semver(version: str) -> bool:
    return _SEMVER.fullmatch(version) is not None


@dataclass(frozen=True)
class Tolerance:
    """Golden-output tolerance: maximum and 99th-percentile absolute error on [0, 1] outputs."""

    max_abs: float
    p99_abs: float


@dataclass(frozen=True)
class ModelFile:
    """One ONNX file of the bundle."""

    precision: str
    file: str
    tolerance: Tolerance


@dataclass(frozen=True)
class GoldenPair:
    """Member names of one golden input ``(N, I·C, P, P)`` and its expected output ``(N, 3, P, P)``."""

    input: str
    output: str


@dataclass(frozen=True)
class StyleModel:
    """One named stain style: an RGB → RGB model applied to the generator's output (payload ``stained:<name>``)."""

    name: str
    file: str
    input_name: str
    output_name: str
    tolerance: Tolerance
    golden: GoldenPair

    @property
    def payload(self) -> str:
        return f"stained:{self.name}"


def _get(doc: dict[str, Any], key: str, typ: type | tuple[type, ...], where: str = "") -> Any:
    path = f"{where}.{key}" if where else key
    if not isinstance(doc, dict) or key not in doc:
        raise ManifestError(f"manifest field {path!r} is missing")
    value = doc[key]
    if not isinstance(value, typ) or (isinstance(value, bool) and typ is not bool):
        name = typ.__name__ if isinstance(typ, type) else "/".join(t.__name__ for t in typ)
        raise ManifestError(f"manifest field {path!r}: expected {name}, found {value!r}")
    return value


def _require(ok: bool, field: str, expected: str, found: object) -> None:
    if not ok:
        raise ManifestError(f"manifest field {field!r}: expected {expected}, found {found!r}")


@dataclass(frozen=True)
class Manifest:
    """The fields of ``manifest.json`` the runtime acts on; ``doc`` keeps the whole document."""

    schema_version: int
    name: str
    version: str
    recipe_id: str
    recipe_hash: str
    channels: tuple[str, ...]
    patch_size: int
    input_name: str
    output_name: str
    in_channels: int
    models: tuple[ModelFile, ...]
    preferred_precision: str
    batch_min: int
    batch_opt: int
    batch_max: int
    min_tensorrt: str
    files: dict[str, str]
    golden: tuple[GoldenPair, ...]
    doc: dict[str, Any]
    styles: tuple[StyleModel, ...] = ()
    #: The OpenVINO int8 IR's (xml, bin) members, when the bundle has one.
    openvino_int8: tuple[str, str] | None = None

    @property
    def slug(self) -> str:
        """``NAME-VERSION``: the bundle's file stem and its directory name once installed."""
        return f"{self.name}-{self.version}"

    def model(self, precision: str) -> ModelFile:
        """The model of ``precision``; :class:`ManifestError` listing the available ones otherwise."""
        for m in self.models:
            if m.precision == precision:
                return m
        raise ManifestError(f"bundle {self.slug} has no {precision} model; it has "
                            f"{', '.join(m.precision for m in self.models)}")

    def gate_passed(self, variant: str) -> bool:
        """Whether the export's quality gate passed ``variant`` (``"openvino-bf16"``, ``"int8"``, ...);
        ``False`` when the bundle has no gate record for it (bundles made before the gate)."""
        record = self.doc.get("quality_gate", {}).get(variant)
        return isinstance(record, dict) and record.get("passed") is True

    def gate_summary(self, variant: str) -> str:
        """The gate's figures for ``variant`` and how they were measured (``""`` without a record)."""
        record = self.doc.get("quality_gate", {}).get(variant)
        if not isinstance(record, dict):
            return ""
        return f"{record.get('reason', '')}, measured with {record.get('measured_with', '?')}"

    @staticmethod
    def parse_json(data: bytes) -> dict[str, Any]:
        """``manifest.json`` bytes → dict, or :class:`ManifestError`."""
        try:
            doc = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ManifestError(f"{MANIFEST_NAME} is not UTF-8 JSON: {exc}") from exc
        if not isinstance(doc, dict):
            raise ManifestError(f"{MANIFEST_NAME}: expected a JSON object, found {type(doc).__name__}")
        return doc

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> Manifest:
        """Validate a parsed manifest; :class:`SchemaVersionError` / :class:`ManifestError` name the field."""
        version = doc.get("schema_version")
        if version not in SUPPORTED_SCHEMA_VERSIONS or isinstance(version, bool):
            raise SchemaVersionError(f"manifest schema_version {version!r}; this runtime reads "
                                     f"{list(SUPPORTED_SCHEMA_VERSIONS)}: upgrade stainless on the device or "
                                     "re-export the bundle with a matching stainless")
        name, semver = _get(doc, "name", str), _get(doc, "version", str)
        _require(_NAME.fullmatch(name) is not None, "name", "[a-z0-9][a-z0-9._-]{0,63}", name)
        _require(is_semver(semver), "version", "a semantic version like 1.2.0", semver)
        recipe = _get(doc, "recipe", dict)
        channels = _get(recipe, "channels", list, "recipe")
        _require(bool(channels) and all(isinstance(c, str) for c in channels), "recipe.channels",
                 "a non-empty list of channel names", channels)
        patch = _get(doc, "patch_size", int)
        _require(patch >= 1, "patch_size", ">= 1", patch)
        inp, out = _get(doc, "input", dict), _get(doc, "output", dict)
        in_shape = _get(inp, "shape", list, "input")
        in_channels = 3 * len(channels)
        _require(in_shape[1:] == [in_channels, patch, patch], "input.shape",
                 f"['batch', {in_channels}, {patch}, {patch}] (3 colours × {len(channels)} images)", in_shape)
        _require(_get(out, "shape", list, "output")[1:] == [3, patch, patch], "output.shape",
                 f"['batch', 3, {patch}, {patch}]", out.get("shape"))
        return cls(
            schema_version=version, name=name, version=semver,
            recipe_id=_get(recipe, "id", str, "recipe"), recipe_hash=_get(recipe, "hash", str, "recipe"),
            channels=tuple(channels), patch_size=patch, input_name=_get(inp, "name", str, "input"),
            output_name=_get(out, "name", str, "output"), in_channels=in_channels,
            models=_models(doc), preferred_precision=_get(_get(doc, "precision", dict), "preferred", str,
                                                          "precision"),
            **_profile(doc), min_tensorrt=_get(doc, "min_tensorrt", str), files=_files(doc),
            golden=_golden(doc), doc=doc, styles=_styles(doc, patch), openvino_int8=_openvino_int8(doc))


def _openvino_int8(doc: dict[str, Any]) -> tuple[str, str] | None:
    if "openvino" not in doc:
        return None
    entry = _get(_get(doc, "openvino", dict), "int8", dict, "openvino")
    pair = (_get(entry, "model", str, "openvino.int8"), _get(entry, "weights", str, "openvino.int8"))
    missing = [m for m in pair if m not in doc["files"]]
    _require(not missing, "files", "a hash for the OpenVINO int8 model and weights", missing)
    return pair


def _models(doc: dict[str, Any]) -> tuple[ModelFile, ...]:
    entries = _get(_get(doc, "precision", dict), "models", list, "precision")
    _require(bool(entries), "precision.models", "at least one model", entries)
    models = []
    for i, m in enumerate(entries):
        where = f"precision.models[{i}]"
        precision, file = _get(m, "precision", str, where), _get(m, "file", str, where)
        _require(precision in PRECISIONS, f"{where}.precision", f"one of {PRECISIONS}", precision)
        tol = _get(m, "tolerance", dict, where)
        max_abs = float(_get(tol, "max_abs", (int, float), f"{where}.tolerance"))
        p99 = float(_get(tol, "p99_abs", (int, float), f"{where}.tolerance"))
        _require(0 <= p99 <= max_abs, f"{where}.tolerance", "0 <= p99_abs <= max_abs", tol)
        models.append(ModelFile(precision, file, Tolerance(max_abs, p99)))
    names = [m.precision for m in models]
    _require(len(set(names)) == len(names), "precision.models", "one model per precision", names)
    preferred = _get(_get(doc, "precision", dict), "preferred", str, "precision")
    _require(preferred in names, "precision.preferred", f"one of the bundled precisions {names}", preferred)
    return tuple(models)


def _profile(doc: dict[str, Any]) -> dict[str, int]:
    prof = _get(doc, "batch_profile", dict)
    lo, opt, hi = (_get(prof, k, int, "batch_profile") for k in ("min", "opt", "max"))
    _require(1 <= lo <= opt <= hi, "batch_profile", "1 <= min <= opt <= max", prof)
    return {"batch_min": lo, "batch_opt": opt, "batch_max": hi}


def _files(doc: dict[str, Any]) -> dict[str, str]:
    files = _get(doc, "files", dict)
    for member, digest in files.items():
        _require(_MEMBER.fullmatch(member) is not None and ".." not in member.split("/"), f"files[{member!r}]",
                 "a relative member name", member)
        _require(isinstance(digest, str) and re.fullmatch(r"[0-9a-f]{64}", digest) is not None,
                 f"files[{member!r}]", "a sha256 hex digest", digest)
    models = [m["file"] for m in doc["precision"]["models"]]
    golden = [g[k] for g in doc.get("golden", []) if isinstance(g, dict) for k in ("input", "output") if k in g]
    missing = [m for m in models + golden if m not in files]
    _require(not missing, "files", "a hash for every model and golden file", missing)
    return dict(files)


def _styles(doc: dict[str, Any], patch: int) -> tuple[StyleModel, ...]:
    if "styles" not in doc:
        return ()
    styles = []
    for i, st in enumerate(_get(doc, "styles", list)):
        where = f"styles[{i}]"
        name = _get(st, "name", str, where)
        _require(_STYLE.fullmatch(name) is not None, f"{where}.name", "[a-z0-9][a-z0-9._-]{0,31}", name)
        inp, out = _get(st, "input", dict, where), _get(st, "output", dict, where)
        for part, key in ((inp, "input"), (out, "output")):
            _require(_get(part, "shape", list, f"{where}.{key}")[1:] == [3, patch, patch], f"{where}.{key}.shape",
                     f"['batch', 3, {patch}, {patch}] (RGB of the generator's patch)", part.get("shape"))
        tol, golden = _get(st, "tolerance", dict, where), _get(st, "golden", dict, where)
        styles.append(StyleModel(
            name, _get(st, "file", str, where), _get(inp, "name", str, f"{where}.input"),
            _get(out, "name", str, f"{where}.output"),
            Tolerance(float(_get(tol, "max_abs", (int, float), f"{where}.tolerance")),
                      float(_get(tol, "p99_abs", (int, float), f"{where}.tolerance"))),
            GoldenPair(_get(golden, "input", str, f"{where}.golden"), _get(golden, "output", str, f"{where}.golden"))))
    names = [s.name for s in styles]
    _require(len(set(names)) == len(names), "styles", "unique style names", names)
    files = doc["files"]
    missing = [m for s in styles for m in (s.file, s.golden.input, s.golden.output) if m not in files]
    _require(not missing, "files", "a hash for every style model and golden file", missing)
    return tuple(styles)


def _golden(doc: dict[str, Any]) -> tuple[GoldenPair, ...]:
    pairs = _get(doc, "golden", list)
    _require(bool(pairs), "golden", "at least one golden input/output pair", pairs)
    return tuple(GoldenPair(_get(g, "input", str, f"golden[{i}]"), _get(g, "output", str, f"golden[{i}]"))
                 for i, g in enumerate(pairs))


# --- golden comparison ---------------------------------------------------------------------------

@dataclass(frozen=True)
class GoldenResult:
    """Errors of one model on the golden pairs (absolute, on [0, 1] outputs) and whether they pass."""

    precision: str
    max_abs: float
    median_abs: float
    p99_abs: float
    tolerance: Tolerance

    @property
    def passed(self) -> bool:
        return self.max_abs <= self.tolerance.max_abs and self.p99_abs <= self.tolerance.p99_abs

    def describe(self) -> str:
        return (f"{self.precision}: max {self.max_abs:.3g} (≤ {self.tolerance.max_abs:g}), median "
                f"{self.median_abs:.3g}, p99 {self.p99_abs:.3g} (≤ {self.tolerance.p99_abs:g})")


def compare_outputs(got: NDArray[Any], want: NDArray[Any], tolerance: Tolerance,
                    precision: str = "") -> GoldenResult:
    """Absolute-error statistics of ``got`` vs ``want`` (same shape) against ``tolerance``."""
    if got.shape != want.shape:
        raise SelfTestError(f"{precision or 'model'} output shape {got.shape}, golden {want.shape}")
    err = np.abs(got.astype(np.float64) - want.astype(np.float64)).ravel()
    if not np.all(np.isfinite(err)):
        return GoldenResult(precision, float("inf"), float("inf"), float("inf"), tolerance)
    return GoldenResult(precision, float(err.max()), float(np.median(err)), float(np.percentile(err, 99)), tolerance)


#: The quality gate of a cheaper precision against fp32 (export and the device's self-test).
GATE_SSIM_MIN = 0.995


@dataclass(frozen=True)
class SsimGate:
    """Mean SSIM (:func:`core.measures.ssim`, per cell, RGB) of a variant's outputs against fp32's."""

    variant: str
    ssim: float
    minimum: float = GATE_SSIM_MIN

    @property
    def passed(self) -> bool:
        return self.ssim >= self.minimum

    def describe(self) -> str:
        return f"{self.variant}: SSIM vs fp32 {self.ssim:.4f} ({'>=' if self.passed else '<'} {self.minimum:g})"


def ssim_gate(got: NDArray[Any], want: NDArray[Any], variant: str, minimum: float = GATE_SSIM_MIN) -> SsimGate:
    """The SSIM gate of ``got`` against the fp32 ``want`` (both ``(N, 3, P, P)`` on [0, 1]); NaN fails."""
    from core.measures import ssim

    if got.shape != want.shape or got.ndim != 4:
        raise SelfTestError(f"{variant}: output shape {got.shape}, fp32 {want.shape}; expected one (N, 3, P, P)")
    if not np.all(np.isfinite(got)):
        return SsimGate(variant, float("-inf"), minimum)
    crop = got.shape[-1] > 2 * 11  # the 5 px border only when the window fits well inside the patch
    return SsimGate(variant, float(np.mean([ssim(a, b, crop=crop) for a, b in zip(got, want, strict=True)])), minimum)


# --- signatures ----------------------------------------------------------------------------------

def key_id(public_key: Ed25519PublicKey) -> str:
    """Short fingerprint (16 hex) of a public key: sha256 of its raw 32 bytes."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def load_public_key(source: Path | bytes | Ed25519PublicKey) -> Ed25519PublicKey:
    """An Ed25519 public key from a PEM file, PEM bytes or raw 32 bytes."""
    if isinstance(source, Ed25519PublicKey):
        return source
    data = source if isinstance(source, bytes) else _read_key_file(Path(source))
    try:
        if len(data) == 32:
            return Ed25519PublicKey.from_public_bytes(data)
        key = serialization.load_pem_public_key(data)
    except ValueError as exc:
        raise SignatureError(f"public key is not a PEM or raw Ed25519 key: {exc}; use the .pub file written by "
                             "`stainless-export keygen`") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise SignatureError(f"public key is a {type(key).__name__}, expected an Ed25519 key "
                             "(`stainless-export keygen`)")
    return key


def _read_key_file(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise SignatureError(f"cannot read public key {path}: {exc.strerror}") from exc


def signature_blob(signature: bytes, public_key: Ed25519PublicKey) -> bytes:
    """The ``manifest.sig`` member: JSON with the algorithm, the signer's key id and the base64 signature."""
    doc = {"algorithm": "ed25519", "key_id": key_id(public_key), "signature": base64.b64encode(signature).decode()}
    return canonical_json(doc)


def verify_signature(manifest: dict[str, Any], blob: bytes, public_key: Ed25519PublicKey) -> str:
    """Check ``manifest.sig`` against the canonical manifest; return the signer's key id."""
    try:
        doc = json.loads(blob.decode("utf-8"))
        if doc.get("algorithm") != "ed25519":
            raise ValueError(f"algorithm {doc.get('algorithm')!r}, expected 'ed25519'")
        sig = base64.b64decode(doc["signature"], validate=True)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise SignatureError(f"{SIGNATURE_NAME} is malformed ({exc}); re-sign the bundle") from exc
    want = key_id(public_key)
    try:
        public_key.verify(sig, canonical_json(manifest))
    except InvalidSignature:
        signer = doc.get("key_id", "?")
        why = (f"it was signed with key {signer}, the trusted key is {want}" if signer != want
               else "the manifest was changed after signing")
        raise SignatureError(f"signature does not verify: {why}; get a bundle signed with the trusted key") from None
    return want
