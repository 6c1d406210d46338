"""Freeing the spatial axes of an ONNX model by editing its protobuf (checked with the onnx package)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from edge.device.backends.onnxruntime import OnnxRuntimeBackend
from edge.device.errors import BackendError
from edge.device.onnxshape import free_spatial_dims
from tests.support.convnets import conv_chain


def test_spatial_axes_become_symbolic_and_everything_else_is_kept() -> None:
    static = conv_chain(2, patch=64)
    model = onnx.load_from_string(free_spatial_dims(static))
    onnx.checker.check_model(model)
    for vi in (*model.graph.input, *model.graph.output):
        dims = vi.type.tensor_type.shape.dim
        assert [d.dim_param for d in dims] == ["batch", "", "height", "width"]
        assert dims[1].dim_value in (4, 3)
    before = onnx.load_from_string(static)
    assert [i.name for i in model.graph.initializer] == [i.name for i in before.graph.initializer]
    assert model.graph.node == before.graph.node


def test_freed_model_runs_any_size_and_matches_the_static_one() -> None:
    static_bytes = conv_chain(3, patch=64)
    static = OnnxRuntimeBackend(static_bytes, threads=1)
    free = OnnxRuntimeBackend(free_spatial_dims(static_bytes), threads=1)
    assert static.patch_size == 64 and free.patch_size == 0
    x = np.random.default_rng(0).random((2, 4, 64, 64), dtype=np.float32)
    np.testing.assert_array_equal(free.infer(x), static.infer(x))
    assert free.infer(np.zeros((1, 4, 37, 90), np.float32)).shape == (1, 3, 37, 90)
    with pytest.raises(BackendError, match="expected a batch"):
        static.infer(np.zeros((1, 4, 37, 90), np.float32))


def test_stale_value_info_is_dropped() -> None:
    model = onnx.load_from_string(conv_chain(2, patch=64))
    model = onnx.shape_inference.infer_shapes(model)
    assert len(model.graph.value_info) > 0
    freed = onnx.load_from_string(free_spatial_dims(model.SerializeToString()))
    assert len(freed.graph.value_info) == 0


@pytest.mark.parametrize("blob", [b"", b"not an onnx model at all", b"\x3a\xff\xff"])
def test_garbage_is_refused(blob: bytes) -> None:
    with pytest.raises(BackendError, match="ONNX model"):
        free_spatial_dims(blob)
