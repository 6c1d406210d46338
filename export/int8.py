"""INT8 ONNX by ONNX Runtime static quantisation, in one of two forms, and its quality against fp32.

* ``qdq`` (TensorRT-compatible): signed int8, symmetric activations and per-channel symmetric
  weights (zero points 0), QuantizeLinear/DequantizeLinear pairs around every Conv, biases left in
  float (TensorRT's Q/DQ support is int8 only; it fuses the float bias itself). The int8 TensorRT
  engine is built from this graph.
* ``qoperator`` (ONNX Runtime CPU): ``QLinearConv`` and friends with asymmetric uint8 activations
  and per-channel int8 weights in a 7-bit range (``reduce_range``), the form ONNX Runtime's CPU int8
  kernels (u8 x s8) run without a dequantise/quantise pair around every op. TensorRT cannot build
  from it.

``exclude`` names nodes (of the fp32 graph) left in float, e.g. the first and last Conv. Calibration
batches should be dataset samples (see :func:`export.calibration.dataset_stacks`); random inputs make
a valid but less accurate model.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

import numpy as np
import onnx
import torch
from numpy.typing import NDArray
from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static

from export.onnx_export import INPUT_NAME, finalize
from trainer.data.config import WbcConfig
from trainer.losses import ssim
from trainer.wbc.finder import nucleus_mask

log = logging.getLogger(__name__)

Int8Format = Literal["qdq", "qoperator"]
INT8_FORMATS: tuple[Int8Format, ...] = ("qdq", "qoperator")


class _Batches(CalibrationDataReader):
    def __init__(self, batches: Sequence[NDArray[np.float32]]) -> None:
        self._it: Iterator[NDArray[np.float32]] = iter(batches)

    def get_next(self) -> dict[str, NDArray[np.float32]] | None:
        batch = next(self._it, None)
        return None if batch is None else {INPUT_NAME: batch}


@contextmanager
def _quiet_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    level = root.level
    root.setLevel(max(level, logging.ERROR))
    try:
        yield
    finally:
        root.setLevel(level)


def quantize_int8(model: onnx.ModelProto, calibration: Sequence[NDArray[np.float32]], opset: int,
                  form: Int8Format = "qdq", exclude: Sequence[str] = (),
                  reduce_range: bool | None = None) -> onnx.ModelProto:
    """Int8 copy (``form``: ``qdq`` or ``qoperator``) of the fp32 ``model``, activation ranges from ``calibration``
    batches (min/max); the nodes named in ``exclude`` stay float.

    ``reduce_range`` (default: on for ``qoperator``, off for ``qdq``) quantises weights to 7 bits: ONNX
    Runtime's u8 x s8 kernels on AVX2 CPUs without VNNI add pairs of products in int16 with
    saturation, which with full-range weights shifts the outputs (measured on the shipped model: SSIM
    vs fp32 0.990 with 8 bits, 0.997 with 7)."""
    if form not in INT8_FORMATS:
        raise ValueError(f"int8 form {form!r}: expected one of {', '.join(INT8_FORMATS)}")
    names = {n.name for n in model.graph.node}
    unknown = sorted(set(exclude) - names)
    if unknown:
        raise ValueError(f"int8: nodes to exclude {unknown} are not in the model (it has e.g. {sorted(names)[:5]})")
    if form == "qdq":
        options: dict[str, Any] = dict(quant_format=QuantFormat.QDQ, activation_type=QuantType.QInt8,
                                       extra_options={"ActivationSymmetric": True, "WeightSymmetric": True,
                                                      "QuantizeBias": False})
    else:
        options = dict(quant_format=QuantFormat.QOperator, activation_type=QuantType.QUInt8)
    with tempfile.TemporaryDirectory(prefix="stainless-int8-") as tmp:
        src, dst = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        src.write_bytes(model.SerializeToString())
        with _quiet_root_logger():  # the quantiser advises "pre-processing" on the root logger every call
            quantize_static(str(src), str(dst), _Batches(calibration), weight_type=QuantType.QInt8, per_channel=True,
                            calibrate_method=CalibrationMethod.MinMax, nodes_to_exclude=list(exclude),
                            reduce_range=form == "qoperator" if reduce_range is None else reduce_range, **options)
        quantized = onnx.load(str(dst))
    del quantized.graph.value_info[:]
    return finalize(quantized, opset)


def edge_convs(model: onnx.ModelProto) -> tuple[str, str]:
    """Names of the first and the last ``Conv`` of ``model`` (graph order), the usual int8-sensitive pair."""
    convs = [n.name for n in model.graph.node if n.op_type == "Conv"]
    if not convs:
        raise ValueError("int8: the model has no Conv node to keep in float")
    return convs[0], convs[-1]


def quality(got: NDArray[np.float32], want: NDArray[np.float32], pixel_size_um: float = 0.293) -> dict[str, Any]:
    """Quality of ``got`` against the fp32 output ``want`` (both ``(N, 3, P, P)`` in [0, 1]).

    ``ssim`` (Gaussian window 11, σ 1.5, on RGB; 1 = identical), ``mae``, and ``nucleus_iou``: IoU of
    the nucleus masks (:func:`trainer.wbc.finder.nucleus_mask`, default config) of the two outputs,
    pooled over all cells — whether the cheaper model adds or removes nuclear material.
    """
    g, w = torch.from_numpy(got), torch.from_numpy(want)
    window = min(11, got.shape[-1] - (1 - got.shape[-1] % 2))
    s = float(ssim(g, w, window=window).item())
    cfg = WbcConfig()
    inter = union = 0
    for a, b in zip(got, want, strict=True):
        ma = nucleus_mask(a, pixel_size_um, cfg)[0]
        mb = nucleus_mask(b, pixel_size_um, cfg)[0]
        inter += int(np.logical_and(ma, mb).sum())
        union += int(np.logical_or(ma, mb).sum())
    return {"ssim": s, "ssim_loss": 1.0 - s, "mae": float(np.abs(got - want).mean()),
            "nucleus_iou": 1.0 if union == 0 else inter / union}
