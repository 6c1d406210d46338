"""OpenVINO int8: NNCF post-training quantisation of the fp32 ONNX, calibrated on training samples,
stored in the bundle as an OpenVINO IR and put through the quality gate like every cheaper precision.

NNCF places the quantisers where OpenVINO's CPU plugin fuses them (around the convolutions, not
between every concatenation of a dense block), so int8 pays there: on the seed-size default and an
AMX CPU, 8.9–10.9 ms per cell against 14–16 for bf16, SSIM 0.997 against fp32 on the test split,
where ONNX Runtime's QDQ graph compiled by the same plugin was 11.6–15.4 ms at SSIM 0.98 (README, export
section, "OpenVINO int8"). The ``mixed`` preset (symmetric weights, asymmetric activations) is the
default: ``performance`` (symmetric both) was 0.5 ms faster at SSIM 0.9951, at the gate's edge.

Members: :data:`XML` and :data:`BIN`; the manifest's ``openvino.int8`` names them and says how they
were made, ``quality_gate["openvino-int8"]`` holds the verdict (:func:`add_openvino_int8`). A variant
that fails the gate is left out (its verdict stays). Needs ``openvino`` and ``nncf`` (host only).
"""

from __future__ import annotations

import contextlib
import logging
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from numpy.typing import NDArray

from edge.device.bundle import sha256
from edge.device.manifest import OPENVINO_INT8
from export import calibration
from export.bundlefile import open_for_new_content, write_new_version
from export.errors import ExportError
from export.gate import GateResult, judge
from export.onnx_export import onnx_outputs

log = logging.getLogger(__name__)

XML, BIN = "model.openvino-int8.xml", "model.openvino-int8.bin"
#: How activation ranges are estimated (the manifest records it).
RANGES = "mean over the calibration samples of each sample's quantiles (NNCF MEAN_QUANTILE)"
PRESETS = ("mixed", "performance")


def import_nncf() -> Any:
    """``import nncf`` without its telemetry: NNCF sends usage events to Google Analytics unless it finds
    itself in a CI or under pytest, and falls back to a silent stub when its telemetry package does not
    import, which it cannot while NNCF is imported (:func:`edge.device.backends.openvino.import_blocking`,
    as OpenVINO's converter is kept out). Raises ImportError when NNCF is not installed."""
    from edge.device.backends.openvino import import_blocking

    return import_blocking("nncf", "openvino_telemetry")


def quantize_openvino(fp32: bytes, calib: NDArray[np.float32], preset: str = "mixed") -> tuple[bytes, bytes]:
    """The fp32 ONNX quantised to int8 by NNCF: the IR's xml and bin. Activation ranges from ``calib`` (one
    sample per step), each the mean over the samples of a quantile of that sample's values
    (:data:`RANGES`), not the extremes: on the shipped models' test cells SSIM against fp32 0.99756 →
    0.99808 (default) and 0.99452 → 0.99531 (fast, which fails the gate with min/max ranges)."""
    if preset not in PRESETS:
        raise ExportError(f"OpenVINO int8 preset {preset!r}; valid: {', '.join(PRESETS)}")
    try:
        from edge.device.backends.openvino import import_openvino, shared_core
        ov = import_openvino()
        nncf = import_nncf()
    except ImportError as exc:
        raise ExportError(f"OpenVINO int8 needs openvino and nncf on the host ({exc}); pip install "
                          "stainless[train,openvino]") from exc
    model = shared_core().read_model(fp32, b"")
    data = nncf.Dataset([calib[i:i + 1] for i in range(len(calib))])
    from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters
    from nncf.quantization.range_estimator import RangeEstimatorParametersSet

    quantiles = RangeEstimatorParametersSet.MEAN_QUANTILE
    ranges = AdvancedQuantizationParameters(activations_range_estimator_params=quantiles)
    with contextlib.redirect_stdout(sys.stderr):  # NNCF's progress bars: stdout stays for --json
        quantised = nncf.quantize(model, data, subset_size=len(calib), preset=nncf.QuantizationPreset(preset),
                                  advanced_parameters=ranges)
    with tempfile.TemporaryDirectory() as tmp:
        xml = Path(tmp) / "model.xml"
        ov.save_model(quantised, str(xml), compress_to_fp16=False)
        return xml.read_bytes(), xml.with_suffix(".bin").read_bytes()


def ir_outputs(xml: bytes, weights: bytes, x: NDArray[np.float32], batch: int = 8) -> NDArray[np.float32]:
    """The IR's outputs on ``x`` (OpenVINO CPU, the device's int8 backend)."""
    from edge.device.backends.openvino import OpenVinoBackend

    backend = OpenVinoBackend(xml, precision="int8", label="openvino-int8", weights=weights)
    try:
        return np.concatenate([backend.infer(x[i:i + batch]) for i in range(0, len(x), batch)])
    finally:
        backend.close()


def add_openvino_int8(members: dict[str, bytes], manifest: dict[str, Any], calib: NDArray[np.float32],
                      x: NDArray[np.float32], targets: NDArray[np.float32] | None, pixel_size_um: float,
                      preset: str = "mixed") -> GateResult:
    """Quantise the bundle's fp32 ONNX (``members``, ``manifest``: changed in place), judge it against fp32
    on ``x`` (:func:`export.gate.judge`; ``targets``: the test split's) and, if it passes, add the IR."""
    fp32 = next(m["file"] for m in manifest["precision"]["models"] if m["precision"] == "fp32")
    xml, weights = quantize_openvino(members[fp32], calib, preset)
    ref = onnx_outputs(onnx.load_from_string(members[fp32]), x)
    result = judge(OPENVINO_INT8, ir_outputs(xml, weights, x), ref, targets, pixel_size_um,
                   f"openvino-cpu, NNCF {preset}")
    manifest["quality_gate"] = {**manifest.get("quality_gate", {}), OPENVINO_INT8: result.to_dict()}
    files = {k: v for k, v in manifest["files"].items() if k not in (XML, BIN)}
    for name in (XML, BIN):
        members.pop(name, None)
    manifest.pop("openvino", None)
    if result.passed:
        members.update({XML: xml, BIN: weights})
        files.update({XML: sha256(xml), BIN: sha256(weights)})
        manifest["openvino"] = {"int8": {"model": XML, "weights": BIN, "quantisation": {
            "tool": "nncf", "preset": preset, "calibration": f"{len(calib)} training samples",
            "activation_ranges": RANGES,
            "float_inference_precision": "bf16 where the CPU has it natively, else fp32"}}}
    else:
        log.warning("quality gate: %s is left out of the bundle: %s (on %d samples)", OPENVINO_INT8, result.reason,
                    len(x))
    manifest["files"] = files
    return result


def requantize_bundle(bundle: Path, dataset: Path, version: str, key: Ed25519PrivateKey | None, out: Path,
                      public_key: Path | Ed25519PublicKey | None = None, preset: str = "mixed",
                      calibration_count: int = 64, gate_count: int = 64) -> tuple[Path, GateResult]:
    """A new bundle version: ``bundle`` (verified; its signature too when ``public_key`` is given) with its
    OpenVINO int8 made (or made again) from its fp32 ONNX, calibrated on ``dataset``'s training split and
    gated on its test split; every other member byte for byte."""
    doc, members = open_for_new_content(bundle, version, public_key)
    ckpt = {"recipe": {"id": doc["recipe"]["id"], "channel_names": list(doc["recipe"]["channels"])}}
    test, targets, px = calibration.dataset_stacks(dataset, ckpt, gate_count, "test")
    calib, _, _ = calibration.dataset_stacks(dataset, ckpt, calibration_count, "train", 1)
    result = add_openvino_int8(members, doc, calib, test, targets, px, preset)
    path = write_new_version(doc, members, version, key, out)
    return path, result
