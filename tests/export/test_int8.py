"""INT8 quantisation: TensorRT-compatible QDQ graph, ONNX Runtime QOperator graph, accuracy and quality vs fp32."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper

from export.calibration import batches, synthetic_stacks
from export.int8 import edge_convs, quality, quantize_int8
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


def _tiny() -> tuple[onnx.ModelProto, np.ndarray]:
    torch.manual_seed(0)
    return export_onnx(RRDBGenerator(12, n_blocks=1, features=8, growth=4), 12, 16), synthetic_stacks(16, 12, 16)


def test_qoperator_int8_runs_in_onnxruntime_with_u8_activations_and_7_bit_per_channel_weights() -> None:
    fp32, x = _tiny()
    q = quantize_int8(fp32, batches(x[:8], 4), 17, "qoperator")
    convs = [n for n in q.graph.node if n.op_type == "QLinearConv"]
    assert convs and "Conv" not in {n.op_type for n in q.graph.node}
    inits = {t.name: numpy_helper.to_array(t) for t in q.graph.initializer}
    for n in convs:  # inputs: x, x_scale, x_zp, w, w_scale, w_zp, y_scale, y_zp[, bias]
        assert inits[n.input[2]].dtype == np.uint8 and inits[n.input[3]].dtype == np.int8
        assert inits[n.input[4]].size == inits[n.input[3]].shape[0] > 1  # one scale per output channel
    weights = [inits[n.input[3]] for n in convs]
    assert max(int(np.abs(w.astype(int)).max()) for w in weights) <= 64  # 7-bit: no int16 saturation on AVX2
    full = quantize_int8(fp32, batches(x[:8], 4), 17, "qoperator", reduce_range=False)
    full_inits = {t.name: numpy_helper.to_array(t) for t in full.graph.initializer}
    assert max(int(np.abs(full_inits[n.input[3]].astype(int)).max()) for n in full.graph.node
               if n.op_type == "QLinearConv") > 64
    got, want = onnx_outputs(q, x[8:]), onnx_outputs(fp32, x[8:])
    assert got.shape == want.shape and np.isfinite(got).all()
    p = parity("int8", got, want)
    assert p.p99_abs < 0.05 and p.max_abs < 0.15


def test_excluded_edge_convs_stay_float_and_bad_requests_are_refused() -> None:
    fp32, x = _tiny()
    first, last = edge_convs(fp32)
    q = quantize_int8(fp32, batches(x[:8], 4), 17, "qoperator", (first, last))
    float_convs = [n.name for n in q.graph.node if n.op_type == "Conv"]
    assert float_convs == [first, last] and any(n.op_type == "QLinearConv" for n in q.graph.node)
    assert np.isfinite(onnx_outputs(q, x[8:])).all()
    with pytest.raises(ValueError, match="not in the model"):
        quantize_int8(fp32, batches(x[:8], 4), 17, "qoperator", ("/no/such/Conv",))
    with pytest.raises(ValueError, match="expected one of qdq, qoperator"):
        quantize_int8(fp32, batches(x[:8], 4), 17, "qint4")  # type: ignore[arg-type]


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
