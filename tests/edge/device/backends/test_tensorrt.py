"""TensorRT backend: the pure planning logic everywhere; the real library only under ``-m tensorrt``."""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge.device.backends import tensorrt as t
from edge.device.bundle import read_members
from edge.device.errors import BackendError, BackendUnavailableError
from edge.device.manifest import Manifest
from tests.edge.bundle_support import GOLDEN_BUNDLE, golden_members, manifest_doc


@pytest.fixture(scope="module")
def manifest() -> Manifest:
    return Manifest.from_dict(manifest_doc(golden_members()))


def test_parse_version() -> None:
    assert t.parse_version("10.3.0.26") == (10, 3, 0, 26)
    assert t.parse_version("11.0.1+cuda13") == (11, 0, 1)
    with pytest.raises(BackendError):
        t.parse_version("unknown")


def test_tensorrt_10_builds_fp16_from_fp32_with_the_flag_and_pinned_layers(manifest: Manifest) -> None:
    plan = t.plan_engine(manifest, "fp16", "10.3.0")
    assert plan.onnx_file == "model.fp32.onnx" and not plan.strongly_typed
    assert plan.builder_flags == ("FP16", "OBEY_PRECISION_CONSTRAINTS")
    assert plan.fp32_layers == tuple(manifest.doc["precision"]["fp32_nodes"])
    assert plan.sizes == (1, 8, 32)


@pytest.mark.parametrize("version", ["11.0.0", "11.4.1", "12.1"])
def test_tensorrt_11_builds_strongly_typed_from_the_fp16_onnx(manifest: Manifest, version: str) -> None:
    plan = t.plan_engine(manifest, "fp16", version, max_batch=16)
    assert plan.onnx_file == "model.fp16.onnx" and plan.strongly_typed and plan.builder_flags == ()
    assert plan.sizes == (1, 8, 16)
    assert t.plan_engine(manifest, "int8", version).onnx_file == "model.int8.onnx"


def test_int8_on_tensorrt_10_uses_the_qdq_model(manifest: Manifest) -> None:
    plan = t.plan_engine(manifest, "int8", "10.0.1")
    assert plan.onnx_file == "model.int8.onnx" and "INT8" in plan.builder_flags


@pytest.mark.parametrize("version", ["10.3.0", "11.0.0"])
def test_a_qoperator_int8_model_is_not_built_by_tensorrt(version: str) -> None:
    doc = manifest_doc(golden_members())
    qop = Manifest.from_dict(doc | {"int8": {"format": "qoperator", "in_bundle": True}})
    with pytest.raises(BackendError, match="--int8-format qdq"):
        t.plan_engine(qop, "int8", version)
    qdq = Manifest.from_dict(doc | {"int8": {"format": "qdq", "in_bundle": True}})
    assert t.plan_engine(qdq, "int8", version).onnx_file == "model.int8.onnx"
    assert t.plan_engine(qop, "fp16", version).onnx_file in ("model.fp32.onnx", "model.fp16.onnx")


def test_old_tensorrt_and_bad_requests_are_refused(manifest: Manifest) -> None:
    with pytest.raises(BackendUnavailableError, match="too old"):
        t.plan_engine(manifest, "fp16", "8.6.1")
    with pytest.raises(BackendError, match="precision"):
        t.plan_engine(manifest, "bf16", "10.3")
    with pytest.raises(BackendError, match="max batch"):
        t.plan_engine(manifest, "fp16", "10.3", max_batch=0)


def test_profile_sizes() -> None:
    assert t.profile_sizes(1, 8, 32) == (1, 8, 32)
    assert t.profile_sizes(4, 4, 4) == (4,)
    with pytest.raises(BackendError):
        t.profile_sizes(8, 4, 32)


@given(n=st.integers(1, 200), sizes=st.lists(st.integers(1, 64), min_size=1, max_size=4, unique=True))
def test_plan_batches_covers_every_cell_once_with_the_tightest_profile(n: int, sizes: list[int]) -> None:
    chunks = t.plan_batches(n, sizes)
    ordered = sorted(sizes)
    assert chunks[0].start == 0 and chunks[-1].stop == n
    for a, b in itertools.pairwise(chunks):
        assert a.stop == b.start
    for c in chunks:
        count = c.stop - c.start
        assert ordered[c.profile] == c.size >= count
        assert all(s < count for s in ordered if s < c.size)  # no smaller profile would hold it


def test_fill_padded_copies_the_batch_and_zeroes_the_rest_in_place() -> None:
    x = np.arange(3 * 2 * 4 * 4, dtype=np.float32).reshape(3, 2, 4, 4) + 1
    dest = np.full((8, 2, 4, 4), 7.0, np.float32)  # stale rows from a larger earlier batch
    t.fill_padded(dest, x)
    assert np.array_equal(dest[:3], x) and not dest[3:].any()
    t.fill_padded(dest[:3], x)  # an exact fit
    assert np.array_equal(dest[:3], x)
    with pytest.raises(ValueError, match="does not fit"):
        t.fill_padded(dest[:2], x)


def test_engine_cache_key_depends_on_everything() -> None:
    base = dict(onnx_sha256="a" * 64, precision="fp16", sizes=(1, 8, 32), gpu_name="Orin",
                compute_capability=(8, 7), trt_version="10.3.0")
    key = t.engine_cache_key(**base)  # type: ignore[arg-type]
    assert key == t.engine_cache_key(**base)  # type: ignore[arg-type]
    for change in [{"onnx_sha256": "b" * 64}, {"precision": "fp32"}, {"sizes": (1, 8, 16)}, {"gpu_name": "RTX 4090"},
                   {"compute_capability": (8, 9)}, {"trt_version": "10.4.0"}]:
        assert t.engine_cache_key(**{**base, **change}) != key  # type: ignore[arg-type]
    assert t.engine_file(Path("c"), key, "fp16") == Path("c") / f"fp16-{key}.engine"
    assert t.timing_cache_file(Path("c"), "10.3.0", "NVIDIA Jetson AGX Orin", (8, 7)).name == \
        "timing-trt10.3.0-nvidia-jetson-agx-orin-sm87.cache"


def test_atomic_write_leaves_no_temporary_file(tmp_path: Path) -> None:
    target = tmp_path / "cache" / "x.engine"
    t.atomic_write(target, b"engine")
    t.atomic_write(target, b"engine2")
    assert target.read_bytes() == b"engine2" and [p.name for p in target.parent.iterdir()] == ["x.engine"]


def test_pinned_layers_match_parser_names() -> None:
    names = ["/conv/Conv", "/exp/Exp", "/exp/Exp_output_0", "/exponent/Mul", "/sum/ReduceSum.1"]
    assert t.pinned_layers(names, ["/exp/Exp", "/sum/ReduceSum"]) == [1, 2, 4]


def test_missing_tensorrt_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # import tensorrt → ImportError, even on a device
    with pytest.raises(BackendUnavailableError, match="TensorRT is not installed"):
        t.require_tensorrt()
    with pytest.raises(BackendUnavailableError, match="TensorRT is not installed"):
        t.TensorRTBackend(Path("x.engine"), (1, 8))
    monkeypatch.setitem(sys.modules, "pycuda", None)
    monkeypatch.setitem(sys.modules, "pycuda.autoinit", None)
    with pytest.raises(BackendUnavailableError, match="pycuda"):
        t.require_pycuda()


@pytest.mark.tensorrt
def test_real_engine_reproduces_the_golden_outputs(tmp_path: Path, manifest: Manifest) -> None:
    trt = t.require_tensorrt()
    plan = t.plan_engine(manifest, "fp16", trt.__version__, max_batch=8)
    members = read_members(GOLDEN_BUNDLE)
    onnx_path = tmp_path / plan.onnx_file
    onnx_path.write_bytes(members[plan.onnx_file])
    engine = t.build_engine(onnx_path, plan, (12, 16, 16), manifest.input_name, tmp_path,
                            manifest.files[plan.onnx_file])
    assert t.build_engine(onnx_path, plan, (12, 16, 16), manifest.input_name, tmp_path,
                          manifest.files[plan.onnx_file]) == engine  # cache hit
    backend = t.TensorRTBackend(engine, plan.sizes)
    try:
        from edge.device.selftest import load_npy

        x = load_npy(members["golden/input_000.npy"], "in")
        want = load_npy(members["golden/output_000.npy"], "out")
        np.testing.assert_allclose(backend.infer(np.repeat(x, 5, axis=0))[:2], want, rtol=0, atol=2e-2)
    finally:
        backend.close()


@pytest.mark.tensorrt
def test_auto_builds_then_reuses_the_bundle_engine_and_serves_it(tmp_path: Path) -> None:
    """On a device: ``auto`` opens TensorRT (engine from the bundle, golden self-test), then reuses the cache."""
    from edge.device.config import ModelConfig
    from edge.device.model import open_model
    from firmware_bridge.rigs import get_profile
    from tests.edge.bundle_support import GOLDEN_PUB

    cfg = ModelConfig(bundle=str(GOLDEN_BUNDLE), public_key=str(GOLDEN_PUB), precision="fp16",
                      engine_cache=str(tmp_path))
    first = open_model(cfg, get_profile("thesis-43"))
    try:
        assert first.backend.name == "tensorrt" and first.backend_reason == "tensorrt (first choice)"
        engines = sorted(tmp_path.glob("*.engine"))
        assert len(engines) == 1
        built = engines[0].stat().st_mtime_ns
    finally:
        first.close()
    second = open_model(cfg, get_profile("thesis-43"))
    try:
        assert second.backend.name == "tensorrt" and engines[0].stat().st_mtime_ns == built  # cache hit
    finally:
        second.close()
