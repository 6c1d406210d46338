"""The OpenVINO backend on this machine's CPU (real OpenVINO), against the golden bundle."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from edge.device.backends import Backend
from edge.device.backends.onnxruntime import OnnxRuntimeBackend
from edge.device.backends.openvino import (
    OpenVinoBackend,
    bf16_problem,
    compile_properties,
    cpu_capabilities,
    layer_table,
    property_text,
)
from edge.device.bundle import read_members
from edge.device.crops import normalise_batch
from edge.device.errors import BackendError, BackendUnavailableError, SelfTestError
from edge.device.manifest import Manifest, ssim_gate
from edge.device.selftest import openvino_self_test
from tests.edge.bundle_support import golden_members
from tests.support.rawcells import counts_from_inputs, plane_normalisation

ROOT = Path(__file__).resolve().parents[4]
SHIPPED = ROOT / "models" / "default.stainless"


@pytest.fixture(scope="module")
def golden() -> tuple[Manifest, dict[str, bytes]]:
    members = golden_members()
    return Manifest.from_dict(Manifest.parse_json(members["manifest.json"])), members


def open_fp32(golden: tuple[Manifest, dict[str, bytes]]) -> OpenVinoBackend:
    manifest, members = golden
    return OpenVinoBackend(members[manifest.model("fp32").file], label="tiny")


def test_openvino_passes_the_golden_self_test(golden: tuple[Manifest, dict[str, bytes]]) -> None:
    manifest, members = golden
    backend = open_fp32(golden)
    try:
        assert isinstance(backend, Backend) and backend.name == "openvino-fp32"
        assert backend.providers_loaded == ("openvino:CPU:fp32",)
        results = openvino_self_test(manifest, members.__getitem__, backend)
        assert all(r.passed for r in results) and len(results) == 2
    finally:
        backend.close()


def test_the_self_test_fails_when_outputs_drift(golden: tuple[Manifest, dict[str, bytes]]) -> None:
    manifest, members = golden
    out = manifest.golden[0].output
    want = np.load(io.BytesIO(members[out]))
    noisy = want + np.random.default_rng(1).normal(0, 0.1, want.shape).astype(np.float32)
    buf = io.BytesIO()
    np.save(buf, noisy.astype(np.float32))
    backend = open_fp32(golden)
    try:
        with pytest.raises(SelfTestError, match=r"SSIM vs fp32 0\.[0-8]"):
            openvino_self_test(manifest, {**members, out: buf.getvalue()}.__getitem__, backend)
    finally:
        backend.close()


def test_bad_batches_and_a_closed_backend_raise(golden: tuple[Manifest, dict[str, bytes]]) -> None:
    backend = open_fp32(golden)
    with pytest.raises(BackendError, match="expected a batch"):
        backend.infer(np.zeros((1, 3, backend.patch_size, backend.patch_size), np.float32))
    with pytest.raises(BackendError, match="float32"):
        backend.infer(np.zeros((1, backend.in_channels, backend.patch_size, backend.patch_size)))
    backend.close()
    with pytest.raises(BackendError, match="closed"):
        backend.infer(np.zeros((1, backend.in_channels, backend.patch_size, backend.patch_size), np.float32))


def test_a_fixed_batch_gives_the_any_batch_models_outputs_and_follows_raw_input(
        golden: tuple[Manifest, dict[str, bytes]]) -> None:
    from edge.device.inference import ModelRunner

    backend = open_fp32(golden)
    x = np.random.default_rng(0).random((4, backend.in_channels, backend.patch_size, backend.patch_size),
                                        dtype=np.float32)
    want = backend.infer(x)
    try:
        backend.fix_batch(4)
        assert backend.fixed_batch == (4, False) and backend.plugin_properties()["FIXED_BATCH"] == "4"
        np.testing.assert_allclose(backend.infer(x), want, rtol=0, atol=1e-5)
        np.testing.assert_allclose(backend.infer(x[:3]), want[:3], rtol=0, atol=1e-5)  # other sizes: any-batch
        with pytest.raises(BackendError, match="offset and scale"):  # a failed accept_raw changes nothing
            backend.accept_raw(np.zeros(3, np.float32), np.ones(2, np.float32))
        assert backend.fixed_batch == (4, False) and not backend.accepts_raw
        np.testing.assert_allclose(backend.infer(x), want, rtol=0, atol=1e-5)
        norm = plane_normalisation(backend.in_channels // 3)
        counts = counts_from_inputs(x, norm)
        assert ModelRunner(backend, None, (0.0, 1.0), norm=norm).takes_raw
        assert backend.fixed_batch == (4, True)  # accept_raw compiled the fixed size again, for camera counts
        np.testing.assert_allclose(backend.infer(counts), backend.infer(normalise_batch(counts, norm)),
                                   rtol=0, atol=1e-5)
        with pytest.raises(BackendError, match="expected a size >= 1"):
            backend.fix_batch(0)
    finally:
        backend.close()
    with pytest.raises(BackendError, match="closed"):
        backend.fix_batch(4)


@pytest.mark.parametrize("streams", [2, 4])
def test_a_full_batch_in_equal_parts_on_streams_of_their_own_gives_the_same_outputs(
        golden: tuple[Manifest, dict[str, bytes]], streams: int) -> None:
    from edge.device.inference import ModelRunner

    backend = open_fp32(golden)
    x = np.random.default_rng(0).random((4, backend.in_channels, backend.patch_size, backend.patch_size),
                                        dtype=np.float32)
    want = backend.infer(x)
    try:
        backend.fix_batch(4, streams)
        assert backend.plugin_properties()["FIXED_BATCH_STREAMS"] == str(streams)
        got = backend.infer(x)
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)
        assert got.dtype == np.float32 and got.flags.owndata  # not a view of the requests' output tensors
        np.testing.assert_allclose(backend.infer(x[:3]), want[:3], rtol=0, atol=1e-5)
        norm = plane_normalisation(backend.in_channels // 3)
        assert ModelRunner(backend, None, (0.0, 1.0), norm=norm).takes_raw  # re-fixed with as many streams
        assert backend.fixed_batch == (4, True) and backend.plugin_properties()["FIXED_BATCH_STREAMS"] == str(streams)
        counts = counts_from_inputs(x, norm)
        np.testing.assert_allclose(backend.infer(counts), backend.infer(normalise_batch(counts, norm)),
                                   rtol=0, atol=1e-5)
        with pytest.raises(BackendError, match="cannot run as 3 equal parts"):
            backend.fix_batch(4, 3)
    finally:
        backend.close()


def test_layer_table_sums_by_node_type_and_kernel_largest_first_without_fused_nodes() -> None:
    entries = [("Convolution", "brgconv_avx512_amx_I8", 2.0), ("Concat", "ref_I8", 0.5),
               ("Convolution", "brgconv_avx512_amx_I8", 3.0), ("Convolution", "jit_avx512_f32", 4.0),
               ("FakeQuantize", "undef", 0.0)]
    assert list(layer_table(entries).items()) == [("Convolution (brgconv_avx512_amx_I8)", 5.0),
                                                  ("Convolution (jit_avx512_f32)", 4.0), ("Concat (ref_I8)", 0.5)]
    assert layer_table([]) == {}


def test_the_layer_profile_times_the_model_as_served_on_its_own_compiled_copy(
        golden: tuple[Manifest, dict[str, bytes]]) -> None:
    from edge.device.inference import ModelRunner

    backend = open_fp32(golden)
    x = np.random.default_rng(0).random((3, backend.in_channels, backend.patch_size, backend.patch_size),
                                        dtype=np.float32)
    try:
        table = backend.layer_profile(x, repeats=2)
        assert any(k.startswith("Convolution (") for k in table) and all(v > 0 for v in table.values())
        assert list(table.values()) == sorted(table.values(), reverse=True)
        assert backend.fixed_batch is None and "FIXED_BATCH" not in backend.plugin_properties()  # serving untouched
        norm = plane_normalisation(backend.in_channels // 3)
        assert ModelRunner(backend, None, (0.0, 1.0), norm=norm).takes_raw
        raw = backend.layer_profile(counts_from_inputs(x, norm), repeats=1)  # the camera-count model's nodes
        assert any(k.startswith("Convolution (") for k in raw)
        with pytest.raises(BackendError, match="expected a batch"):
            backend.layer_profile(x[:, :1])
    finally:
        backend.close()
    with pytest.raises(BackendError, match="closed"):
        backend.layer_profile(x)


def test_unreadable_models_and_unknown_precisions_are_refused() -> None:
    with pytest.raises(BackendError, match="cannot read"):
        OpenVinoBackend(b"not an onnx model", label="junk")
    with pytest.raises(BackendError, match="valid: fp32, bf16"):
        OpenVinoBackend(b"", precision="int4")


def test_bf16_is_used_only_where_the_cpu_has_it(golden: tuple[Manifest, dict[str, bytes]]) -> None:
    assert bf16_problem(("FP32", "BF16", "INT8")) is None
    assert "no native bf16" in (bf16_problem(("FP32", "INT8")) or "")
    manifest, members = golden
    fp32 = members[manifest.model("fp32").file]
    if bf16_problem(cpu_capabilities()) is None:  # AMX / AVX-512 BF16: bf16 runs and passes the SSIM gate
        backend = OpenVinoBackend(fp32, precision="bf16")
        x, y = (np.load(io.BytesIO(members[n])) for n in (manifest.golden[0].input,
                                                                        manifest.golden[0].output))
        assert ssim_gate(backend.infer(x), y, "openvino-bf16").passed
        backend.close()
    else:  # this CPU (e.g. an AMD EPYC without AVX-512): refused, with the reason
        with pytest.raises(BackendUnavailableError, match="no native bf16"):
            OpenVinoBackend(fp32, precision="bf16")


def test_compile_properties_honour_threads_and_leave_threads_unpinned() -> None:
    props = compile_properties("bf16", 0)
    assert props["INFERENCE_PRECISION_HINT"] == "bf16" and props["ENABLE_CPU_PINNING"] is False
    assert "INFERENCE_NUM_THREADS" not in props  # 0: the plugin's default, as ONNX Runtime's intra-op threads
    assert compile_properties("fp32", 1)["INFERENCE_NUM_THREADS"] == 1


@pytest.mark.parametrize("threads", [0, 1])
def test_the_compiled_model_runs_with_those_properties(golden: tuple[Manifest, dict[str, bytes]],
                                                       threads: int) -> None:
    manifest, members = golden
    backend = OpenVinoBackend(members[manifest.model("fp32").file], threads=threads, label="tiny")
    try:
        props = backend.plugin_properties()
    finally:
        backend.close()
    assert props["ENABLE_CPU_PINNING"] == "False"  # the plugin's own default on Linux is True
    if threads:
        assert props["INFERENCE_NUM_THREADS"] == str(threads)
    else:  # one per physical core this process may use (hyper-threads not counted under the latency hint)
        assert 1 <= int(props["INFERENCE_NUM_THREADS"]) <= len(os.sched_getaffinity(0))
    with pytest.raises(BackendError, match="closed"):
        backend.plugin_properties()


def test_the_runner_reports_what_openvino_runs_with_and_nothing_for_other_backends(
        golden: tuple[Manifest, dict[str, bytes]]) -> None:
    from edge.device.backends import ReportsProperties
    from edge.device.backends.onnxruntime import OnnxRuntimeBackend
    from edge.device.inference import ModelRunner

    manifest, members = golden
    fp32 = members[manifest.model("fp32").file]
    backend = OpenVinoBackend(fp32, threads=1, label="tiny")
    runner = ModelRunner(backend, None, (0.0, 1.0))
    assert isinstance(backend, ReportsProperties)
    assert runner.plugin_properties == backend.plugin_properties()
    assert runner.plugin_properties["INFERENCE_NUM_THREADS"] == "1"
    assert runner.plugin_properties["PERFORMANCE_HINT"] == "LATENCY"
    backend.close()
    assert runner.plugin_properties == {}  # closed (a flash swapped it out while status was asked): nothing, no error
    ort = OnnxRuntimeBackend(fp32, threads=1)
    assert not isinstance(ort, ReportsProperties) and ModelRunner(ort, None, (0.0, 1.0)).plugin_properties == {}


def test_property_values_read_as_plain_text() -> None:
    import enum

    class ElementType:  # what OpenVINO's Type offers
        def get_type_name(self) -> str:
            return "bf16"

    class Mode(enum.Enum):
        PERFORMANCE = 1

    assert property_text(ElementType()) == "bf16" and property_text(Mode.PERFORMANCE) == "PERFORMANCE"
    assert property_text(False) == "False" and property_text(2) == "2" and property_text("LATENCY") == "LATENCY"


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_raw_input_matches_the_float_path_on_the_shipped_model(precision: str) -> None:
    """Camera counts normalised inside the compiled model give the float path's outputs (measured max abs
    difference: fp32 2.4e-7; bf16 3.7e-3, each path 3-4e-3 from ONNX Runtime fp32) on the shipped bundle."""
    from edge.device.inference import ModelRunner

    if precision == "bf16" and (why := bf16_problem(cpu_capabilities())) is not None:
        pytest.skip(why)
    members = read_members(SHIPPED)
    x = np.load(io.BytesIO(members["golden/input_000.npy"]))
    norm = plane_normalisation(44)
    counts = counts_from_inputs(x, norm)  # ~1 % dark and ~1 % saturated pixels: the clip matters
    inputs = normalise_batch(counts, norm)
    reference = OnnxRuntimeBackend(members["model.fp32.onnx"], threads=1).infer(inputs)
    backend = OpenVinoBackend(members["model.fp32.onnx"], precision=precision)
    try:
        assert ModelRunner(backend, None, (0.0, 1.0), norm=norm).takes_raw  # raw_input = auto: it pays here
        assert backend.accepts_raw and backend.raw_input_pays
        got, want = backend.infer(counts), backend.infer(inputs)
    finally:
        backend.close()
    if precision == "fp32":
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)
        np.testing.assert_allclose(got, reference, rtol=0, atol=1e-5)
    else:  # bf16 rounds every layer's inputs: the raw path is as close to fp32 as the float path is
        assert np.abs(got - want).max() < 0.02
        assert np.abs(got - reference).max() <= 1.5 * np.abs(want - reference).max()
        assert ssim_gate(got, reference, "openvino-bf16 raw input").passed


def test_raw_input_on_the_shipped_openvino_int8_ir_matches_its_float_path() -> None:
    """The IR's prefix comes from OpenVINO's preprocessing, the ONNX graph's from onnxshape: the same counts
    give the float path's outputs (int8 rounds like the float path does; measured max abs difference 0)."""
    from edge.device.backends.openvino import raw_input_ir
    from edge.device.inference import ModelRunner

    members = read_members(SHIPPED)
    manifest = json.loads(members["manifest.json"])["openvino"]["int8"]
    x = np.load(io.BytesIO(members["golden/input_000.npy"]))
    norm = plane_normalisation(44)
    counts = counts_from_inputs(x, norm)
    backend = OpenVinoBackend(members[manifest["model"]], precision="int8", weights=members[manifest["weights"]])
    try:
        assert ModelRunner(backend, None, (0.0, 1.0), norm=norm).takes_raw and backend.accepts_raw
        got, want = backend.infer(counts), backend.infer(normalise_batch(counts, norm))
    finally:
        backend.close()
    assert got.dtype == np.float32 and np.abs(got - want).max() < 0.02
    assert ssim_gate(got, want, "openvino-int8 raw input").ssim > 0.999
    with pytest.raises(BackendError, match="offset and scale of one shape"):
        raw_input_ir(None, np.zeros(3, np.float32), np.ones(2, np.float32))


def test_signals_still_reach_python_after_backends_go_in_the_order_they_came() -> None:
    """OpenVINO's CPU plugin gives the thread that loads it an alternate signal stack and, when its Core goes,
    puts back the one it found and frees its own. Two Cores that go in the order they came (a model reopened
    beside the old one, then the old one closed) leave the thread on a freed stack, and the next signal a
    Python handler takes (SIGTERM to the daemon, Ctrl-C, a child's SIGCHLD) killed the process with SIGSEGV.
    Run in a process of its own: here that process would die."""
    script = textwrap.dedent("""
        import gc, os, signal
        from edge.device.backends.openvino import OpenVinoBackend
        from edge.device.manifest import Manifest
        from tests.edge.bundle_support import golden_members

        members = golden_members()
        onnx = members[Manifest.from_dict(Manifest.parse_json(members["manifest.json"])).model("fp32").file]
        handled = []
        signal.signal(signal.SIGUSR1, lambda *_: handled.append(True))
        first = OpenVinoBackend(onnx, label="first")
        second = OpenVinoBackend(onnx, label="second")
        first.close()
        second.close()
        del first
        gc.collect()
        del second
        gc.collect()
        os.kill(os.getpid(), signal.SIGUSR1)
        print("handled" if handled else "not handled")
    """)
    proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"exit {proc.returncode}: {proc.stderr[-2000:]}"
    assert proc.stdout.strip() == "handled"
