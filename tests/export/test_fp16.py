"""Mixed fp16 conversion: parity to fp32, overflow-prone and unvetted layers kept in fp32."""

from __future__ import annotations

import numpy as np
import onnx
import torch
from torch import nn

from export.calibration import synthetic_stacks
from export.fp16 import to_fp16
from export.onnx_export import export_onnx, onnx_outputs, parity
from trainer.models import RRDBGenerator


def test_rrdb_fp16_parity_median_and_p99() -> None:
    torch.manual_seed(0)
    fp32 = export_onnx(RRDBGenerator(12, n_blocks=1, features=8, growth=4), 12, 16)
    x = synthetic_stacks(12, 12, 16)
    half = to_fp16(fp32, [x[:6]], 17)
    p = parity("fp16", onnx_outputs(half.model, x), onnx_outputs(fp32, x))
    assert p.median_abs <= 1e-3 and p.p99_abs <= 5e-3 and p.max_abs <= 2e-2
    assert half.fp32_nodes == {}
    types = {t.data_type for t in half.model.graph.initializer}
    assert onnx.TensorProto.FLOAT16 in types
    assert half.model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert half.model.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT


class _Overflowing(nn.Module):
    """A layer whose activations reach ~1e5 (beyond fp16's 65504), then scaled back, and an exp."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(12, 3, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        big = self.conv(x) * 3e5
        return torch.sigmoid(big * 1e-5) * torch.exp(-x[:, :3])


def test_overflowing_and_unvetted_nodes_stay_fp32() -> None:
    torch.manual_seed(0)
    model = _Overflowing().eval()
    fp32 = export_onnx(model, 12, 8)
    x = synthetic_stacks(6, 12, 8)
    half = to_fp16(fp32, [x], 17)
    kept = {name.split("/")[-1]: why for name, why in half.fp32_nodes.items()}
    assert any("overflow" in why for why in kept.values()), kept
    assert any("Exp" in why for why in kept.values()), kept
    got, want = onnx_outputs(half.model, x), onnx_outputs(fp32, x)
    assert np.all(np.isfinite(got))
    np.testing.assert_allclose(got, want, rtol=0, atol=2e-2)
    casts = [n for n in half.model.graph.node if n.op_type == "Cast"]
    assert casts  # precision boundaries are explicit Cast nodes
