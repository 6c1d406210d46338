"""Editing an ONNX model's protobuf (checked with the onnx package): free spatial axes, the raw-input prefix."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import onnx
import pytest

from edge.device.backends.onnxruntime import OnnxRuntimeBackend
from edge.device.bundle import read_members
from edge.device.crops import normalise_batch
from edge.device.errors import BackendError
from edge.device.onnxshape import RAW_INPUT, free_spatial_dims, raw_input_graph
from tests.support.convnets import conv_chain
from tests.support.rawcells import counts_from_inputs, plane_normalisation

SHIPPED = Path(__file__).resolve().parents[3] / "models" / "default.stainless"


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


# --- the raw-input prefix (camera counts normalised inside the graph) ---


def _shipped() -> tuple[bytes, np.ndarray]:
    """The shipped default bundle's fp32 ONNX and its golden inputs ``(2, 132, 64, 64)``."""
    members = read_members(SHIPPED)
    return members["model.fp32.onnx"], np.load(io.BytesIO(members["golden/input_000.npy"]))


def test_raw_input_graph_is_valid_onnx_with_the_prefix_in_front_of_the_unchanged_model() -> None:
    model, _ = _shipped()
    norm = plane_normalisation(44)
    edited = onnx.load_from_string(raw_input_graph(model, *norm.per_channel(132)))
    onnx.checker.check_model(edited)
    before = onnx.load_from_string(model)
    (inp,) = edited.graph.input
    assert inp.name == RAW_INPUT and inp.type.tensor_type.elem_type == onnx.TensorProto.UINT16
    assert inp.type.tensor_type.shape == before.graph.input[0].type.tensor_type.shape
    assert [n.op_type for n in edited.graph.node[:4]] == ["Cast", "Sub", "Mul", "Clip"]
    assert edited.graph.node[3].output == [before.graph.input[0].name]  # feeds the tensor the model read
    assert list(edited.graph.node[4:]) == list(before.graph.node)
    offset = next(onnx.numpy_helper.to_array(t) for t in edited.graph.initializer if t.name == f"{RAW_INPUT}.offset")
    np.testing.assert_array_equal(offset.ravel(), np.repeat(norm.offset, 3))
    assert offset.shape == (1, 132, 1, 1)


def test_raw_input_on_onnxruntime_equals_the_float_path_on_the_shipped_model() -> None:
    model, x = _shipped()
    norm = plane_normalisation(44)
    counts = counts_from_inputs(x, norm)  # ~1 % dark and ~1 % saturated pixels: the clip matters
    backend = OnnxRuntimeBackend(model, threads=1)
    backend.accept_raw(*norm.per_channel(132))
    inputs = normalise_batch(counts, norm)
    assert (inputs == 0).mean() > 0.01 and (inputs == 1).mean() > 0.01
    want = backend.infer(inputs)
    got = backend.infer(counts)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)  # measured: 0 (the same float32 operations)
    assert np.abs(got - want).max() < 1e-6
    # a batch's padding rows (zeros) normalise to black, as zero float rows would
    np.testing.assert_allclose(backend.infer(np.zeros((1, 132, 64, 64), np.uint16)),
                               backend.infer(np.zeros((1, 132, 64, 64), np.float32)), rtol=0, atol=1e-6)


def test_raw_input_is_refused_with_the_reason() -> None:
    ones = np.ones(4, np.float32)
    with pytest.raises(BackendError, match="scale > 0"):
        raw_input_graph(conv_chain(1, patch=8), ones, np.zeros(4, np.float32))
    with pytest.raises(BackendError, match="shape"):
        raw_input_graph(conv_chain(1, patch=8), ones, np.ones(3, np.float32))
    old = onnx.load_from_string(conv_chain(1, patch=8))
    old.opset_import[0].version = 10
    with pytest.raises(BackendError, match="opset 10"):
        raw_input_graph(old.SerializeToString(), ones, ones)
    half = onnx.load_from_string(conv_chain(1, patch=8))
    half.graph.input[0].type.tensor_type.elem_type = onnx.TensorProto.FLOAT16
    with pytest.raises(BackendError, match="not a float32 tensor"):
        raw_input_graph(half.SerializeToString(), ones, ones)
    with pytest.raises(BackendError, match="already"):
        raw_input_graph(raw_input_graph(conv_chain(1, patch=8), ones, ones), ones, ones)


def test_a_backend_takes_uint16_only_after_accept_raw() -> None:
    backend = OnnxRuntimeBackend(conv_chain(1, patch=8), threads=1)
    counts = np.full((1, 4, 8, 8), 100, np.uint16)
    assert not backend.accepts_raw
    with pytest.raises(BackendError, match="expected float32 inputs"):
        backend.infer(counts)
    backend.accept_raw(np.zeros(4, np.float32), np.full(4, 200.0, np.float32))
    assert backend.accepts_raw
    np.testing.assert_allclose(backend.infer(counts), backend.infer(np.full((1, 4, 8, 8), 0.5, np.float32)),
                               rtol=0, atol=1e-6)
    with pytest.raises(BackendError, match="or uint16 camera counts"):
        backend.infer(counts.astype(np.int32))
