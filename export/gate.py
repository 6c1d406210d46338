"""The quality gate of each cheaper precision against fp32, at export.

A variant (``fp16``, ``int8``: bundle members run on ONNX Runtime; ``openvino-bf16``: the fp32 ONNX
on OpenVINO with bf16 inference) passes when, on the same inputs (the dataset's test split, or the
given samples):

* the SSIM of its outputs against fp32's outputs is >= :data:`SSIM_MIN` (0.995;
  :func:`edge.device.manifest.ssim_gate`, the same function the device's self-test uses), and
* its nucleus IoU is within :data:`IOU_TOLERANCE` (0.01) of fp32's: against the dataset's
  targets when there are any (``|IoU(variant, target) - IoU(fp32, target)|``), else the IoU of the
  variant's nucleus masks with fp32's must be >= 1 - 0.01.

A variant that fails is left out of the bundle; the manifest's ``quality_gate`` records every
variant's figures and the reason for each one left out.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import onnx
import torch
from numpy.typing import NDArray

from edge.device.manifest import GATE_SSIM_MIN, ssim_gate
from trainer.data.config import WbcConfig
from trainer.wbc.finder import nucleus_mask

log = logging.getLogger(__name__)

SSIM_MIN = GATE_SSIM_MIN
IOU_TOLERANCE = 0.01


@dataclass(frozen=True)
class GateResult:
    """One variant's figures against fp32 on the gate's inputs, and the verdict."""

    variant: str
    n: int
    ssim: float
    nucleus_iou: float  #: the variant's IoU (vs the targets, or vs fp32's masks when there are none)
    nucleus_iou_fp32: float  #: fp32's IoU vs the targets (1.0 when compared with fp32 itself)
    measured_with: str
    passed: bool
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def nucleus_iou(a: NDArray[np.float32], b: NDArray[np.float32], pixel_size_um: float) -> float:
    """IoU of the nucleus masks of ``a`` and ``b`` (``(N, 3, P, P)``), pooled over all cells."""
    cfg = WbcConfig()
    inter = union = 0
    for x, y in zip(a, b, strict=True):
        mx, my = nucleus_mask(x, pixel_size_um, cfg)[0], nucleus_mask(y, pixel_size_um, cfg)[0]
        inter += int(np.logical_and(mx, my).sum())
        union += int(np.logical_or(mx, my).sum())
    return 1.0 if union == 0 else inter / union


def judge(variant: str, got: NDArray[np.float32], fp32: NDArray[np.float32], targets: NDArray[np.float32] | None,
          pixel_size_um: float, measured_with: str = "onnxruntime-cpu") -> GateResult:
    """The gate for ``variant``'s outputs ``got`` against ``fp32`` (same inputs); pure apart from the masks."""
    s = ssim_gate(got, fp32, variant, SSIM_MIN)
    if not np.all(np.isfinite(got)):
        bad = int((~np.isfinite(got)).sum())
        return GateResult(variant, len(got), s.ssim, float("nan"), float("nan"), measured_with, False,
                          f"{bad} non-finite output values")
    if targets is not None:
        iou, ref = nucleus_iou(got, targets, pixel_size_um), nucleus_iou(fp32, targets, pixel_size_um)
    else:
        iou, ref = nucleus_iou(got, fp32, pixel_size_um), 1.0
    problems = []
    if not s.passed:
        problems.append(f"SSIM vs fp32 {s.ssim:.4f} < {SSIM_MIN:g}")
    if not abs(iou - ref) <= IOU_TOLERANCE:  # NaN fails too
        what = "vs the targets" if targets is not None else "vs fp32's masks"
        problems.append(f"nucleus IoU {what} {iou:.4f}, fp32 {ref:.4f}: off by {abs(iou - ref):.4f} "
                        f"> {IOU_TOLERANCE:g}")
    reason = "; ".join(problems) or f"SSIM {s.ssim:.4f}, nucleus IoU {iou:.4f} (fp32 {ref:.4f})"
    return GateResult(variant, len(got), s.ssim, iou, ref, measured_with, not problems, reason)


def bf16_outputs(model: torch.nn.Module, fp32: onnx.ModelProto, inputs: NDArray[np.float32],
                 batch: int = 8) -> tuple[NDArray[np.float32], str]:
    """Outputs of the fp32 model in bf16 and how they were made.

    On a CPU with native bf16, OpenVINO itself (``INFERENCE_PRECISION_HINT = bf16``) runs the fp32
    ONNX, as the device will. Elsewhere OpenVINO refuses bf16 (it would be emulated), so PyTorch
    autocast bf16 on the CPU stands in: every matmul/convolution with bf16 inputs and fp32
    accumulation, the same rounding OpenVINO's bf16 applies.
    """
    from edge.device.backends.openvino import OpenVinoBackend, bf16_problem, cpu_capabilities

    if bf16_problem(cpu_capabilities()) is None:
        backend = OpenVinoBackend(fp32.SerializeToString(), precision="bf16", label="gate")
        try:
            out = np.concatenate([backend.infer(inputs[i:i + batch]) for i in range(0, len(inputs), batch)])
        finally:
            backend.close()
        return out, "openvino-bf16 (CPU plugin)"
    model = model.eval()
    outs = []
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        for i in range(0, len(inputs), batch):
            outs.append(model(torch.from_numpy(np.ascontiguousarray(inputs[i:i + batch]))).float().numpy())
    return np.concatenate(outs).astype(np.float32), "torch autocast bf16 (this CPU has no native bf16)"
