"""Checkpoint → signed, self-testing model bundle (``NAME-VERSION.stainless``).

:func:`build_bundle` exports the fp32 ONNX (checked against PyTorch), the mixed fp16 ONNX and,
optionally, the int8 ONNX and an OpenVINO int8 IR (:mod:`export.openvino_int8`); puts each cheaper
precision (and OpenVINO bf16) through the quality
gate (:mod:`export.gate`) and leaves out the ones that fail, saying why; makes golden input/output
pairs (PyTorch fp32 outputs); checks every model against the golden tolerance on the host; writes
the manifest (see :mod:`edge.device.manifest`), signs it and writes the tar (temporary file +
rename). :func:`export.bundlefile.write_bundle` is the tar writer alone.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from numpy.typing import NDArray

from core.config import check
from edge.device.bundle import sha256
from edge.device.manifest import (
    SCHEMA_VERSION,
    Tolerance,
    compare_outputs,
    key_id,
)
from export import calibration
from export.bundlefile import write_bundle
from export.errors import ParityError
from export.fp16 import to_fp16
from export.gate import bf16_outputs, judge
from export.int8 import INT8_FORMATS, Int8Format, edge_convs, quality, quantize_int8
from export.onnx_export import (
    DEFAULT_OPSET,
    INPUT_NAME,
    OUTPUT_NAME,
    check_fp32_parity,
    export_onnx,
    load_generator,
    onnx_outputs,
    parity,
    torch_outputs,
)
from export.openvino_int8 import PRESETS, add_openvino_int8
from export.style import add_styles
from trainer.losses import ssim

log = logging.getLogger(__name__)

DEFAULT_TOLERANCES = {"fp32": Tolerance(5e-4, 1e-4), "fp16": Tolerance(2e-2, 5e-3), "int8": Tolerance(0.25, 0.08)}
NORMALISATION = {"range": [0.0, 1.0], "formula": "(adu - black_level) / (2**bit_depth - 1 - black_level), clipped "
                 "to [0, 1] (trainer.data.store.Dataset.inputs)",
                 "layout": "channel = image_index * 3 + colour (R, G, B), images in recipe order"}


@dataclass(frozen=True)
class BundleConfig:
    """What :func:`build_bundle` makes; validated on construction."""

    name: str
    version: str
    opset: int = DEFAULT_OPSET
    int8: bool = False
    #: ``qoperator`` (ONNX Runtime CPU: u8 activations, s8 per-channel weights) or ``qdq`` (TensorRT-compatible)
    int8_format: Int8Format = "qoperator"
    #: keep the first and the last Conv in float in the int8 model
    int8_float_edges: bool = False
    #: an OpenVINO int8 IR by NNCF (:mod:`export.openvino_int8`): ``""`` none, else its preset
    openvino_int8: str = ""
    golden_count: int = 2
    calibration_count: int = 32
    batch_min: int = 1
    batch_opt: int = 8
    batch_max: int = 32
    min_tensorrt: str = "10.0"
    stains: tuple[str, ...] = ("romanowsky",)
    fp16_margin: float = 0.25
    preferred: str = "fp16"
    seed: int = 0
    tolerances: dict[str, Tolerance] = field(default_factory=lambda: dict(DEFAULT_TOLERANCES))

    def __post_init__(self) -> None:
        check("bundle", self, golden_count=(self.golden_count >= 1, ">= 1"),
              calibration_count=(self.calibration_count >= 1, ">= 1"),
              batch_max=(1 <= self.batch_min <= self.batch_opt <= self.batch_max, "1 <= batch_min <= opt <= max"),
              opset=(self.opset >= 17, ">= 17"),
              preferred=(self.preferred in ("fp32", "fp16", "int8"), "fp32, fp16 or int8"),
              fp16_margin=(0 < self.fp16_margin <= 1, "0 < margin <= 1"),
              int8_format=(self.int8_format in INT8_FORMATS, " or ".join(INT8_FORMATS)),
              openvino_int8=(self.openvino_int8 in ("", *PRESETS), f"'' (none) or one of {PRESETS}"),
              int8=(self.int8 or self.preferred != "int8", "true (--int8) when the preferred precision is int8"))


@dataclass
class BundleReport:
    """What was built and how close each variant is to its reference."""

    path: Path
    key_id: str | None
    members: dict[str, int]  # bytes per member
    parity: dict[str, dict[str, Any]] = field(default_factory=dict)
    int8_quality: dict[str, float] | None = None
    #: how the int8 model was made (format, types, nodes left in float) and whether the gate kept it
    int8: dict[str, Any] | None = None
    fp32_nodes: dict[str, str] = field(default_factory=dict)
    test_metrics: dict[str, float] = field(default_factory=dict)
    #: :class:`export.gate.GateResult` per variant (``fp16``, ``int8``, ``openvino-bf16``), as dicts.
    quality_gate: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "path": str(self.path)}


def _npy(arr: NDArray[np.float32]) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(arr, np.float32), allow_pickle=False)
    return buf.getvalue()


@dataclass
class _Inputs:
    golden: NDArray[np.float32]
    calib: NDArray[np.float32]
    targets: NDArray[np.float32] | None
    pixel_size_um: float


def _inputs(ckpt: dict[str, Any], cfg: BundleConfig, dataset: Path | None) -> _Inputs:
    spec = ckpt["model"]
    c, p = int(spec["in_channels"]), int(spec["patch_size"])
    if dataset is None:
        log.warning("no dataset given: calibrating and testing on synthetic stacks (int8 quality is indicative)")
        x = calibration.synthetic_stacks(cfg.golden_count + cfg.calibration_count, c, p, cfg.seed)
        return _Inputs(x[:cfg.golden_count], x[cfg.golden_count:], None, 0.293)
    test, targets, px = calibration.dataset_stacks(dataset, ckpt, max(cfg.golden_count, 64), "test", cfg.seed)
    train, _, _ = calibration.dataset_stacks(dataset, ckpt, cfg.calibration_count, "train", cfg.seed + 1)
    return _Inputs(test, train, targets, px)


def _check_golden(precision: str, got: NDArray[np.float32], want: NDArray[np.float32], tol: Tolerance) -> None:
    result = compare_outputs(got, want, tol, precision)
    if not result.passed:
        raise ParityError(f"{precision} model misses its golden tolerance on the host: {result.describe()}; "
                          "loosen BundleConfig.tolerances or keep more layers in fp32")


def _models(model: torch.nn.Module, ckpt: dict[str, Any], cfg: BundleConfig, data: _Inputs,
            report: BundleReport) -> dict[str, onnx.ModelProto]:
    spec = ckpt["model"]
    fp32 = export_onnx(model, int(spec["in_channels"]), int(spec["patch_size"]), cfg.opset)
    evals = np.concatenate([data.golden, data.calib])
    report.parity["fp32"] = check_fp32_parity(model, fp32, evals).to_dict()
    ref = onnx_outputs(fp32, evals)
    half = to_fp16(fp32, calibration.batches(data.calib, 8), cfg.opset, cfg.fp16_margin)
    report.fp32_nodes = half.fp32_nodes
    report.parity["fp16"] = parity("fp16 vs fp32 (onnxruntime)", onnx_outputs(half.model, evals), ref).to_dict()
    models = {"fp32": fp32, "fp16": half.model}
    if cfg.int8:
        exclude: tuple[str, ...] = edge_convs(fp32) if cfg.int8_float_edges else ()
        models["int8"] = quantize_int8(fp32, calibration.batches(data.calib, 8), cfg.opset, cfg.int8_format, exclude)
        report.int8 = int8_record(cfg.int8_format, exclude, len(data.calib))
        got = onnx_outputs(models["int8"], evals)
        report.parity["int8"] = parity("int8 vs fp32 (onnxruntime)", got, ref).to_dict()
        report.int8_quality = quality(got, ref, data.pixel_size_um)
    return models


def int8_record(form: Int8Format, exclude: tuple[str, ...], n_calibration: int) -> dict[str, Any]:
    """The manifest's ``int8`` entry before the gate: the format, its types and the nodes left in float."""
    activations = "uint8 asymmetric" if form == "qoperator" else "int8 symmetric"
    weights = "int8 per-channel symmetric" + (", 7-bit range" if form == "qoperator" else "")
    return {"format": form, "activations": activations, "weights": weights,
            "calibration": f"min/max on {n_calibration} samples", "float_nodes": list(exclude),
            "tensorrt": form == "qdq"}


def _gate(model: torch.nn.Module, models: dict[str, onnx.ModelProto], x: NDArray[np.float32],
          targets: NDArray[np.float32] | None, pixel_size_um: float,
          report: BundleReport) -> dict[str, onnx.ModelProto]:
    """The models that pass the quality gate on ``x`` (fp32 always); every verdict goes into ``report``."""
    ref = onnx_outputs(models["fp32"], x)
    kept = {"fp32": models["fp32"]}
    runs = {name: (onnx_outputs(proto, x), "onnxruntime-cpu") for name, proto in models.items() if name != "fp32"}
    runs["openvino-bf16"] = bf16_outputs(model, models["fp32"], x)
    for name, (got, how) in runs.items():
        result = judge(name, got, ref, targets, pixel_size_um, how)
        report.quality_gate[name] = result.to_dict()
        if result.passed and name in models:
            kept[name] = models[name]
        elif not result.passed:
            log.warning("quality gate: %s is left out of the bundle: %s (on %d %s samples)", name, result.reason,
                        len(x), "test" if targets is not None else "synthetic")
    return kept


def _test_metrics(model: torch.nn.Module, data: _Inputs) -> dict[str, float]:
    if data.targets is None:
        return {}
    pred = torch.from_numpy(torch_outputs(model, data.golden))
    target = torch.from_numpy(data.targets)
    window = min(11, pred.shape[-1] - (1 - pred.shape[-1] % 2))
    return {"n": float(len(pred)), "ssim": float(ssim(pred, target, window=window).item()),
            "mae": float((pred - target).abs().mean().item())}


def build_bundle(checkpoint: Path, cfg: BundleConfig, out: Path, key: Ed25519PrivateKey | None,
                 dataset: Path | None = None, styles: dict[str, Path] | None = None) -> BundleReport:
    """Export, check, sign and write the bundle; ``out`` is a file or a directory (→ ``NAME-VERSION.stainless``).

    ``styles``: stain styles (name → ``style.pt`` of ``stainless-train fit-style``) added as extra
    named stain outputs (:mod:`export.style`)."""
    model, ckpt = load_generator(Path(checkpoint))
    out = Path(out)
    path = out / f"{cfg.name}-{cfg.version}.stainless" if out.is_dir() else out
    report = BundleReport(path, key_id(key.public_key()) if key else None, {})
    data = _inputs(ckpt, cfg, dataset)
    report.test_metrics = _test_metrics(model, data)
    gate_x = data.golden if data.targets is not None else np.concatenate([data.golden, data.calib])
    data.golden = data.golden[:cfg.golden_count]
    models = _gate(model, _models(model, ckpt, cfg, data, report), gate_x, data.targets, data.pixel_size_um, report)
    if report.int8 is not None:
        report.int8 |= {"in_bundle": "int8" in models, "gate": report.quality_gate["int8"]["reason"]}
    golden_out = torch_outputs(model, data.golden)
    members = {"golden/input_000.npy": _npy(data.golden), "golden/output_000.npy": _npy(golden_out)}
    for precision, proto in models.items():
        _check_golden(precision, onnx_outputs(proto, data.golden), golden_out, cfg.tolerances[precision])
        members[f"model.{precision}.onnx"] = proto.SerializeToString()
    manifest = _manifest(ckpt, cfg, models, members, report)
    if cfg.openvino_int8:
        add_openvino_int8(members, manifest, data.calib, gate_x, data.targets, data.pixel_size_um, cfg.openvino_int8)
        report.quality_gate = manifest["quality_gate"]
    if styles:
        styled = add_styles(members, manifest, styles, cfg.opset)
        report.parity.update({f"style:{k}": v for k, v in styled.parity.items()})
    write_bundle(path, members, manifest, key)
    report.members = {n: len(b) for n, b in members.items()}
    log.info("wrote %s (%s)", path, ", ".join(f"{n} {len(b) / 1e6:.2f} MB" for n, b in members.items()))
    return report


def _manifest(ckpt: dict[str, Any], cfg: BundleConfig, models: dict[str, onnx.ModelProto],
              members: dict[str, bytes], report: BundleReport) -> dict[str, Any]:
    spec, recipe, p = ckpt["model"], ckpt["recipe"], int(ckpt["model"]["patch_size"])
    now = datetime.now(UTC).replace(microsecond=0)
    fp32 = models["fp32"]
    return {
        "schema_version": SCHEMA_VERSION, "name": cfg.name, "version": cfg.version,
        "created": now.isoformat().replace("+00:00", "Z"), "created_unix": int(now.timestamp()),
        "recipe": {"id": recipe["id"], "hash": recipe["hash"], "channels": list(recipe["channel_names"])},
        "patch_size": p,
        "input": {"name": INPUT_NAME, "shape": ["batch", int(spec["in_channels"]), p, p], "dtype": "float32",
                  "normalisation": NORMALISATION},
        "output": {"name": OUTPUT_NAME, "shape": ["batch", 3, p, p], "dtype": "float32", "range": [0.0, 1.0],
                   "layout": "RGB, linear, [0, 1]"},
        "stains": list(cfg.stains),
        "precision": {"preferred": cfg.preferred if cfg.preferred in models else "fp32",
                      "fp32_nodes": sorted(report.fp32_nodes),
                      "policy": "fp16 everywhere except nodes listed in fp32_nodes (unvetted ops or activations "
                                f"above {cfg.fp16_margin:g} x the fp16 range on calibration data); I/O float32",
                      "models": [{"precision": k, "file": f"model.{k}.onnx",
                                  "tolerance": cfg.tolerances[k].__dict__} for k in models]},
        "batch_profile": {"min": cfg.batch_min, "opt": cfg.batch_opt, "max": cfg.batch_max},
        "min_tensorrt": cfg.min_tensorrt,
        "onnx": {"opset": cfg.opset, "ir_version": fp32.ir_version, "producer": f"torch {torch.__version__}"},
        "files": {name: sha256(data) for name, data in members.items()},
        "training": {k: ckpt.get(k) for k in ("config", "metrics", "model", "epoch", "step", "kind")}
        | {"test_metrics": report.test_metrics},
        "parity": report.parity, "int8_quality": report.int8_quality, "int8": report.int8,
        "quality_gate": report.quality_gate,
        "golden": [{"input": "golden/input_000.npy", "output": "golden/output_000.npy"}],
    }
