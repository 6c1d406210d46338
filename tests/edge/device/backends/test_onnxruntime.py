"""The ONNX Runtime backend on the stored bundle's models, and the backend table."""

from __future__ import annotations

import numpy as np
import pytest

from edge.device.backends import BACKENDS, Backend, check_batch, open_backend
from edge.device.backends.onnxruntime import OnnxRuntimeBackend
from edge.device.errors import BackendError, BackendUnavailableError
from edge.device.selftest import load_npy
from tests.edge.bundle_support import golden_members


@pytest.fixture(scope="module")
def members() -> dict[str, bytes]:
    return golden_members()


@pytest.mark.parametrize(("precision", "atol"), [("fp32", 5e-4), ("fp16", 2e-2), ("int8", 0.25)])
def test_models_reproduce_the_golden_outputs(members: dict[str, bytes], precision: str, atol: float) -> None:
    x = load_npy(members["golden/input_000.npy"], "in")
    want = load_npy(members["golden/output_000.npy"], "out")
    backend = OnnxRuntimeBackend(members[f"model.{precision}.onnx"])
    try:
        assert isinstance(backend, Backend)
        assert backend.name.startswith("onnxruntime") and backend.providers_loaded == ("CPUExecutionProvider",)
        got = backend.infer(x)
        assert got.dtype == np.float32 and got.shape == (2, 3, 16, 16)
        np.testing.assert_allclose(got, want, rtol=0, atol=atol)
        # batch sizes the model was never run with: the batch axis is dynamic
        np.testing.assert_allclose(backend.infer(np.repeat(x, 5, axis=0))[-1], got[-1], rtol=0, atol=1e-5)
    finally:
        backend.close()


def test_fp16_model_keeps_float32_interface(members: dict[str, bytes]) -> None:
    backend = OnnxRuntimeBackend(members["model.fp16.onnx"], precision="fp16")
    assert backend.name == "onnxruntime-fp16"
    assert backend.infer(np.zeros((1, 12, 16, 16), np.float32)).dtype == np.float32
    assert (backend.in_channels, backend.patch_size) == (12, 16)
    backend.close()


def test_bad_batches_are_refused(members: dict[str, bytes]) -> None:
    backend = OnnxRuntimeBackend(members["model.fp32.onnx"])
    with pytest.raises(BackendError, match=r"\(B>=1, 12, 16, 16\)"):
        backend.infer(np.zeros((1, 11, 16, 16), np.float32))
    with pytest.raises(BackendError, match="float32"):
        backend.infer(np.zeros((1, 12, 16, 16), np.float64))
    backend.close()
    with pytest.raises(BackendError, match="closed"):
        backend.infer(np.zeros((1, 12, 16, 16), np.float32))


@pytest.mark.filterwarnings("ignore:Specified provider")
def test_a_silent_provider_fallback_is_refused(members: dict[str, bytes]) -> None:
    asked = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    with pytest.raises(BackendUnavailableError, match="CUDAExecutionProvider"):
        OnnxRuntimeBackend(members["model.fp32.onnx"], providers=asked)
    backend = OnnxRuntimeBackend(members["model.fp32.onnx"], providers=asked, allow_fallback=True)
    assert backend.providers_loaded == ("CPUExecutionProvider",)
    backend.close()


def test_unloadable_model_is_a_backend_error() -> None:
    with pytest.raises(BackendError, match="cannot load"):
        OnnxRuntimeBackend(b"not an onnx model")


def test_open_backend_table(tmp_path, members: dict[str, bytes]) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "m.onnx"
    path.write_bytes(members["model.fp32.onnx"])
    backend = open_backend("onnxruntime", path, threads=1)
    assert backend.name == "onnxruntime-fp32"
    backend.close()
    with pytest.raises(BackendError, match="valid: onnxruntime, tensorrt"):
        open_backend("openvino", path)
    assert set(BACKENDS) == {"onnxruntime", "tensorrt"}


def test_check_batch_makes_contiguous() -> None:
    x = np.zeros((2, 16, 16, 12), np.float32).transpose(0, 3, 1, 2)
    assert check_batch(x, 12, 16, "t").flags.c_contiguous


def test_sessions_do_not_spin_idle_threads() -> None:
    from edge.device.backends.onnxruntime import session_options

    opts = session_options(2)
    assert opts.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    assert opts.intra_op_num_threads == 2
