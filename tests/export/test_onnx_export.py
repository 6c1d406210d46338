"""fp32 ONNX export: parity with PyTorch, dynamic batch, IR version and the full checker."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from export.calibration import dataset_stacks, synthetic_stacks
from export.errors import ExportError
from export.onnx_export import (
    check_fp32_parity,
    export_onnx,
    ir_version_for_opset,
    load_generator,
    onnx_outputs,
    ort_max_ir_version,
    torch_outputs,
)
from trainer.models import AffineGenerator, RRDBGenerator, UNetGenerator


def test_checkpoint_export_matches_torch_on_random_and_dataset_inputs(checkpoint: Path, dataset: Path) -> None:
    model, ckpt = load_generator(checkpoint)
    proto = export_onnx(model, 12, 16)
    real, _, _ = dataset_stacks(dataset, ckpt, 8, "test")
    for x in (np.random.default_rng(0).random((6, 12, 16, 16), dtype=np.float32), real):
        np.testing.assert_allclose(onnx_outputs(proto, x), torch_outputs(model, x), rtol=0, atol=1e-4)
    assert check_fp32_parity(model, proto, real).max_abs <= 1e-4


@pytest.mark.parametrize("model", [UNetGenerator(12, features=8, depth=2, reduce_to=8), AffineGenerator(12)],
                         ids=["unet", "affine"])
def test_other_generators_export(model: torch.nn.Module) -> None:
    model.eval()
    x = synthetic_stacks(4, 12, 16)
    np.testing.assert_allclose(onnx_outputs(export_onnx(model, 12, 16), x), torch_outputs(model, x), rtol=0, atol=1e-4)


def test_graph_contract() -> None:
    proto = export_onnx(RRDBGenerator(12, n_blocks=1, features=8, growth=4), 12, 16)
    onnx.checker.check_model(proto, full_check=True)
    (inp,), (out,) = proto.graph.input, proto.graph.output
    assert (inp.name, out.name) == ("stack", "stained")
    dims = [d.dim_param or d.dim_value for d in inp.type.tensor_type.shape.dim]
    assert dims == ["batch", 12, 16, 16] and inp.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert proto.opset_import[0].version == 17
    assert proto.ir_version == ir_version_for_opset(17) == 8 <= ort_max_ir_version()
    assert not [n for n in proto.graph.node if n.op_type in ("Constant", "Identity")]
    assert len({n.name for n in proto.graph.node}) == len(proto.graph.node)


def test_old_opset_is_refused() -> None:
    with pytest.raises(ExportError, match="opset >= 17"):
        export_onnx(AffineGenerator(12), 12, 16, opset=13)
