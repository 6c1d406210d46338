"""Whole-field tiling against an untiled reference: real ONNX Runtime on fully convolutional models."""

from __future__ import annotations

import tarfile
from pathlib import Path

import numpy as np
import onnx
import pytest

from edge.device.backends.onnxruntime import OnnxRuntimeBackend
from edge.device.onnxshape import free_spatial_dims
from edge.device.tiling import METHODS, TilingError, halo_tile, measure_halo, plan_axis, plan_tiles, stain_field
from tests.support.convnets import conv_chain

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def chain() -> OnnxRuntimeBackend:
    return OnnxRuntimeBackend(conv_chain(6), threads=1)


@pytest.fixture(scope="module")
def default_onnx() -> bytes:
    with tarfile.open(ROOT / "models" / "default.stainless") as tar:
        member = tar.extractfile("model.fp32.onnx")
        assert member is not None
        return member.read()


def _field(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random(shape, dtype=np.float32)


@pytest.mark.parametrize("method", ["independent", "overlap-crop", "halo"])
@pytest.mark.parametrize("length", [64, 100, 257])
def test_cropping_methods_give_every_pixel_to_exactly_one_window(method: str, length: int) -> None:
    ax = plan_axis(length, 64, method, halo=10)
    total = np.zeros(length)
    for s, w in zip(ax.starts, ax.weights, strict=True):
        assert 0 <= s <= length - 64
        assert set(np.unique(w)) <= {0.0, 1.0}
        total[s:s + 64] += w
    np.testing.assert_array_equal(total, 1.0)


def test_halo_windows_keep_a_halo_from_every_inner_window_edge() -> None:
    ax = plan_axis(300, 64, "halo", halo=10)
    for i, (s, (lo, hi)) in enumerate(zip(ax.starts, ax.support, strict=True)):
        assert lo >= 10 or (i == 0 and lo == 0)
        assert hi <= 54 or (i == len(ax.starts) - 1 and s + hi == 300)


def test_blend_weights_are_triangular_inside_and_flat_at_the_field_edges() -> None:
    ax = plan_axis(256, 64, "overlap-blend")
    assert ax.starts[1] - ax.starts[0] == 16  # crops of 32 px overlapping by 50 %
    inner = ax.weights[2]
    assert inner[:16].max() == 0 and inner[48:].max() == 0 and inner[31] > 0.9 and inner[17] < 0.1
    assert ax.weights[0][0] == 1.0 and ax.weights[-1][-1] == 1.0
    total = np.zeros(256)
    for s, w in zip(ax.starts, ax.weights, strict=True):
        total[s:s + 64] += w
    assert total.min() > 0.5


def test_halo_tiles_cost_at_most_1_3x_on_a_1024_field() -> None:
    t = halo_tile(1024, 19, 512)
    plan = plan_tiles((1024, 1024), t, "halo", 19)
    assert t <= 512 and plan.compute_ratio <= 1.3
    assert plan_tiles((1024, 1024), 64, "halo", 19).compute_ratio > 3  # small tiles pay for the halo


def test_halo_tiling_reproduces_the_untiled_pass_on_a_1024_field(chain: OnnxRuntimeBackend) -> None:
    field = _field((4, 1024, 1024))
    ref = chain.infer(field[None])[0]
    halo = measure_halo(chain.infer, 4, 64)
    assert halo == 6
    plan = plan_tiles(field.shape[1:], (halo_tile(1024, halo, 400),) * 2, "halo", halo)
    out = stain_field(field, chain.infer, plan, batch=2)
    seam = np.abs(out - ref)[:, plan.seam_mask()].mean()
    assert seam <= 1 / 255 and np.abs(out - ref).max() < 1e-5
    assert plan.compute_ratio <= 1.3


def test_independent_tiles_show_seams_that_the_halo_removes(chain: OnnxRuntimeBackend) -> None:
    field = _field((4, 200, 200), seed=2)
    ref = chain.infer(field[None])[0]
    seams = {}
    for method in METHODS:
        plan = plan_tiles((200, 200), 64, method, halo=6)
        seams[method] = float(np.abs(stain_field(field, chain.infer, plan, batch=8) - ref)[:, plan.seam_mask()].mean())
    assert seams["independent"] > 1e-3  # the random chain is smooth; the default model shows 0.03 (bench)
    assert seams["overlap-crop"] < 1e-5 and seams["halo"] < 1e-5  # margin 16 px > receptive field 6 px
    assert seams["overlap-blend"] < 1e-5


@pytest.mark.parametrize("method", METHODS)
def test_borders_and_corners_match_the_untiled_pass(chain: OnnxRuntimeBackend, method: str) -> None:
    field = _field((4, 150, 170), seed=3)
    ref = chain.infer(field[None])[0]
    out = stain_field(field, chain.infer, plan_tiles((150, 170), 64, method, halo=6), batch=4)
    for rows, cols in (((0, 6), (0, 6)), ((0, 6), (164, 170)), ((144, 150), (0, 6)), ((144, 150), (164, 170))):
        corner = (slice(None), slice(*rows), slice(*cols))
        np.testing.assert_allclose(out[corner], ref[corner], atol=1e-6)
    if method != "independent":  # the independent tiles' own seams cross the border rows
        np.testing.assert_allclose(out[:, :4], ref[:, :4], atol=1e-6)
        np.testing.assert_allclose(out[:, :, -4:], ref[:, :, -4:], atol=1e-6)


def test_measured_halo_follows_the_architecture() -> None:
    for layers, dilation in ((3, 1), (4, 2)):
        be = OnnxRuntimeBackend(conv_chain(layers, dilation=dilation), threads=1)
        assert measure_halo(be.infer, 4, 48) == layers * dilation


def conv3x3_count(onnx_bytes: bytes) -> int:
    """3x3 convolutions in the graph: an upper bound of the receptive-field radius of a 3x3 conv net."""
    graph = onnx.load_from_string(onnx_bytes).graph
    return sum(1 for n in graph.node if n.op_type == "Conv"
               and any(a.name == "kernel_shape" and list(a.ints) == [3, 3] for a in n.attribute))


def test_default_model_tiles_to_its_untiled_pass(default_onnx: bytes) -> None:
    free = OnnxRuntimeBackend(free_spatial_dims(default_onnx), threads=1)
    convs = conv3x3_count(default_onnx)
    halo = measure_halo(free.infer, 132, 2 * convs + 4, probes=1)
    assert convs // 3 <= halo <= convs  # the outermost convolutions change the output below float32 resolution
    shape = (2 * halo + 24, 2 * halo + 40)
    field = _field((132, *shape), seed=4)
    ref = free.infer(field[None])[0]
    plan = plan_tiles(shape, (halo_tile(shape[0], halo, 2 * halo + 16), halo_tile(shape[1], halo, 2 * halo + 16)),
                      "halo", halo)
    assert plan.n_tiles > 1
    np.testing.assert_allclose(stain_field(field, free.infer, plan, batch=4), ref, atol=1e-5)


def test_a_field_smaller_than_a_fixed_tile_is_mirrored_out(chain: OnnxRuntimeBackend) -> None:
    fixed = OnnxRuntimeBackend(conv_chain(6, patch=64), threads=1)
    field = _field((4, 40, 50), seed=5)
    out = stain_field(field, fixed.infer, plan_tiles((40, 50), 64, "halo", 6))
    ref = chain.infer(field[None])[0]
    assert out.shape == (3, 40, 50)
    np.testing.assert_allclose(out[:, :30, :40], ref[:, :30, :40], atol=1e-6)  # > 6 px from the mirrored edges
    assert np.abs(out[:, -1] - ref[:, -1]).max() > 1e-4  # the mirrored edge is not the model's zero padding


def test_prepare_turns_raw_windows_into_model_inputs(chain: OnnxRuntimeBackend) -> None:
    raw = (np.random.default_rng(6).random((2, 2, 80, 90)) * 4000).astype(np.uint16)
    x = raw.reshape(4, 80, 90).astype(np.float32) / 4000
    out = stain_field(raw, chain.infer, plan_tiles((80, 90), 64, "halo", 6),
                      prepare=lambda w: w.reshape(4, *w.shape[-2:]).astype(np.float32) / 4000)
    np.testing.assert_allclose(out, chain.infer(x[None])[0], atol=1e-6)


def test_bad_plans_and_models_are_refused(chain: OnnxRuntimeBackend) -> None:
    with pytest.raises(TilingError, match="valid: independent"):
        plan_tiles((100, 100), 64, "pyramid")
    with pytest.raises(TilingError, match="at least 41 px"):
        plan_tiles((100, 100), 32, "halo", halo=20)
    with pytest.raises(TilingError, match="at least 41 px"):
        halo_tile(1000, 20, 40)
    field = _field((4, 100, 100))
    with pytest.raises(TilingError, match="made for"):
        stain_field(field, chain.infer, plan_tiles((90, 100), 64, "halo", 6))
    with pytest.raises(TilingError, match="fully convolutional"):
        stain_field(field, lambda x: x[:, :3, ::2, ::2], plan_tiles((100, 100), 64, "halo", 6))
    with pytest.raises(TilingError, match="probe's edge"):
        measure_halo(chain.infer, 4, 12)
