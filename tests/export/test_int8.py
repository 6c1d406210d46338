"""INT8 QDQ quantisation: TensorRT-compatible QDQ graph, accuracy and quality figures against fp32."""

from __future__ import annotations

import numpy as np
import torch
from onnx import numpy_helper

from export.calibration import batches, synthetic_stacks
from export.int8 import quality, quantize_int8
from export.onnx_export import export_onnx, onnx_outputs, parity
from trainer.models import RRDBGenerator


def test_qdq_int8_is_symmetric_and_close_to_fp32() -> None:
    torch.manual_seed(0)
    fp32 = export_onnx(RRDBGenerator(12, n_blocks=1, features=8, growth=4), 12, 16)
    x = synthetic_stacks(16, 12, 16)
    q = quantize_int8(fp32, batches(x[:8], 4), 17)
    ops = {n.op_type for n in q.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear", "Conv"} <= ops
    inits = {t.name: t for t in q.graph.initializer}
    zero_points = [numpy_helper.to_array(inits[n.input[2]]) for n in q.graph.node
                   if n.op_type in ("QuantizeLinear", "DequantizeLinear") and len(n.input) > 2]
    assert zero_points and all(z.dtype == np.int8 and not z.any() for z in zero_points)  # TensorRT wants this
    got, want = onnx_outputs(q, x[8:]), onnx_outputs(fp32, x[8:])
    p = parity("int8", got, want)
    assert p.p99_abs < 0.05 and p.max_abs < 0.15
    qa = quality(got, want)
    assert 0.9 < qa["ssim"] <= 1.0 and qa["ssim_loss"] == 1.0 - qa["ssim"]
    assert qa["mae"] == np.abs(got - want).mean() < 0.02


def test_nucleus_iou_measures_nuclear_material_removed() -> None:
    """``nucleus_iou`` (IoU of the nucleus masks, pooled): 1 for the same cells, falling as nuclei are erased."""
    from tests.trainer.test_nucleus import render_cell

    cells, nuclei = zip(*(render_cell("wright", seed=k) for k in range(2)), strict=True)
    want = np.stack([np.moveaxis(c, -1, 0) for c in cells]).astype(np.float32)
    one, both = want.copy(), want.copy()
    for k, out in ((0, one), (0, both), (1, both)):  # a nucleus painted over with the cell's cytoplasm
        ring = np.logical_xor(nuclei[k], np.roll(nuclei[k], 4, axis=0)) & ~nuclei[k]
        out[k][:, nuclei[k]] = np.median(want[k][:, ring], axis=1)[:, None]
    iou = [quality(x, want)["nucleus_iou"] for x in (want, one, both)]
    assert iou[0] == 1.0 and iou[1] <= 0.6 and iou[2] < iou[1] and iou[2] < 0.3, iou
