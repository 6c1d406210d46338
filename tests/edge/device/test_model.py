"""The daemon loads signed bundles through edge.device.bundle and runs them behind the output check."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest

from edge.bench.daemon import build_bench_pipeline
from edge.client import ControlClient, FieldSummary, Subscriber
from edge.device.backends.onnxruntime import OnnxRuntimeBackend
from edge.device.backends.select import Machine
from edge.device.config import ModelConfig
from edge.device.crops import Normalisation, normalise, normalise_batch
from edge.device.errors import BundleError, OutputCheckError
from edge.device.inference import ModelRunner, check_output
from edge.device.model import open_model
from firmware_bridge.rigs import get_profile
from tests.edge.bundle_support import GOLDEN_BUNDLE, GOLDEN_PUB
from tests.edge.conftest import bench_config
from tests.support.convnets import conv_chain


def test_signed_bundle_gives_recipe_patch_and_profile() -> None:
    loaded = open_model(ModelConfig(bundle=str(GOLDEN_BUNDLE), public_key=str(GOLDEN_PUB)), get_profile("thesis-43"))
    try:
        spec = loaded.spec
        assert (spec.recipe.id, spec.patch_size, spec.in_channels) == ("le8", 16, 12)
        assert spec.profile_sizes == (1, 8, 32)
        y = loaded.backend.infer(np.zeros((3, 12, 16, 16), np.float32))
        assert y.shape == (3, 3, 16, 16) and check_output(y, 0.0, 1.0) is None
    finally:
        loaded.close()


def test_bundle_signed_by_another_key_is_refused(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    other = tmp_path / "other.pub"
    other.write_bytes(Ed25519PrivateKey.generate().public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    with pytest.raises(BundleError):
        open_model(ModelConfig(bundle=str(GOLDEN_BUNDLE), public_key=str(other)), get_profile("thesis-43"))


def test_padding_to_profile_sizes_and_nan_without_fallback() -> None:
    class Echo:
        name = "echo"
        providers_loaded = ("cpu",)
        seen: ClassVar[list[int]] = []

        def infer(self, x: np.ndarray) -> np.ndarray:
            self.seen.append(x.shape[0])
            return np.full((x.shape[0], 3, 2, 2), np.nan if x.shape[0] == 8 else 0.5, np.float32)

        def close(self) -> None:
            pass

    runner = ModelRunner(Echo(), None, (0.0, 1.0), profile_sizes=(1, 4, 8))
    assert runner.infer(np.zeros((3, 1, 2, 2), np.float32)).shape == (3, 3, 2, 2)
    assert Echo.seen == [4] and runner.padded_slots == 1
    with pytest.raises(OutputCheckError, match="non-finite"):
        runner.infer(np.zeros((5, 1, 2, 2), np.float32))
    assert runner.degraded

    class PadsItself(Echo):  # a backend that pads in its own input buffer (TensorRT)
        pads_batches = True

    Echo.seen.clear()
    padding = ModelRunner(PadsItself(), None, (0.0, 1.0), profile_sizes=(1, 4, 8))
    assert padding.infer(np.zeros((3, 1, 2, 2), np.float32)).shape == (3, 3, 2, 2)
    assert Echo.seen == [3] and padding.padded_slots == 1  # passed as it is, the padding still counted


def test_daemon_runs_a_signed_bundle(tiny_model: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # a device without TensorRT and OpenVINO (what auto picks here depends on this machine's CPU and runtimes)
    monkeypatch.setattr("edge.device.model.probe_machine", lambda: Machine())
    cfg = bench_config(tiny_model)
    cfg = cfg.replace(model=dataclasses.replace(cfg.model, onnx="", bundle=str(GOLDEN_BUNDLE),
                                                public_key=str(GOLDEN_PUB)))
    pipe = build_bench_pipeline(cfg).start()
    try:
        with Subscriber(pipe.publisher.endpoint, topics=("field",)) as sub, \
                ControlClient(pipe.control.endpoint, timeout=5.0) as ctl:
            assert pipe.publisher.wait_for_subscribers(1, 5.0)
            ctl.call("scan_field", field_id=0, stage_um=[0.0, 0.0])
            msg = sub.receive(timeout=30.0)
            # le8 is brightfield only: no scattering energy, so QC calls the field empty (no cells, no crash)
            assert isinstance(msg, FieldSummary) and msg.header["status"] == "rejected"
            status = ctl.call("status")
            assert status["model"]["recipe"] == "le8" and status["model"]["backend"] == "onnxruntime-fp32"
            assert status["model"]["backend_reason"].startswith("onnxruntime-cpu (skipped tensorrt: ")
            assert status["model"]["plugin_properties"] == {}  # ONNX Runtime does not report any (OpenVINO does)
        # ONNX Runtime takes any batch size: the bundle's TensorRT profile sizes do not pad its batches
        assert pipe.spec.profile_sizes == (1, 8, 32) and pipe.runner.profile_sizes == ()
    finally:
        pipe.shutdown()


def test_a_failing_style_is_left_out_and_counted() -> None:
    class Const:
        name = "const"
        providers_loaded = ("cpu",)

        def __init__(self, value: float) -> None:
            self.value = value

        def infer(self, x: np.ndarray) -> np.ndarray:
            return np.full(x.shape, self.value, np.float32)

        def close(self) -> None:
            pass

    runner = ModelRunner(Const(0.5), None, (0.0, 1.0), styles={"good": Const(0.25), "bad": Const(np.nan)})
    y = runner.infer(np.zeros((2, 3, 4, 4), np.float32))
    styled = runner.stylise(y)
    assert list(styled) == ["good"] and styled["good"].shape == (2, 3, 4, 4)
    assert runner.style_failures == {"good": 0, "bad": 1} and not runner.degraded


def test_styles_are_chosen_by_name(tiny_model: Path, tmp_path: Path) -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from core.config import ConfigError
    from tests.edge.bundle_support import bench_bundle

    bundle = bench_bundle(tmp_path / "b-1.0.0.stainless", tiny_model, Ed25519PrivateKey.generate(),
                          {"x": np.eye(3), "y": 0.5 * np.eye(3)})
    geometry = get_profile("thesis-43")
    for styles, want in ((("*",), ["x", "y"]), (("y",), ["y"]), ((), [])):
        loaded = open_model(ModelConfig(bundle=str(bundle), styles=styles), geometry)
        try:
            assert sorted(loaded.styles) == want
        finally:
            loaded.close()
    with pytest.raises(ConfigError, match=r"model.styles: \['z'\] not in bundle .* it has \['x', 'y'\]"):
        open_model(ModelConfig(bundle=str(bundle), styles=("z",)), geometry)


def test_an_int8_bundle_member_on_onnxruntime_is_labelled_int8() -> None:
    # the int8 member keeps float32 I/O: the label comes from the manifest, not from the graph's input type
    root = Path(__file__).resolve().parents[3] / "models"
    cfg = ModelConfig(bundle=str(root / "default.stainless"), backend="onnxruntime", precision="int8",
                      public_key=str(root / "demo-key" / "stainless-signing.pub"))
    loaded = open_model(cfg, get_profile("thesis-43"))
    try:
        assert loaded.backend.name == "onnxruntime-int8"
    finally:
        loaded.close()


class _FloatOnly:
    """A backend that takes float32 inputs only (as TensorRT): records what it was given."""

    name = "float-only"
    providers_loaded = ("cpu",)

    def __init__(self) -> None:
        self.seen: list[np.ndarray] = []

    def infer(self, x: np.ndarray) -> np.ndarray:
        self.seen.append(x)
        return np.full((x.shape[0], 3, 2, 2), np.nan if x.dtype != np.float32 else 0.5, np.float32)

    def close(self) -> None:
        pass


def _counts() -> tuple[np.ndarray, Normalisation]:
    """Camera counts ``(3, 4, 2, 2)`` of 2 planes x 2 colours, some below black and some past white."""
    norm = Normalisation(np.array([16.0, 40.0], np.float32), np.array([4000.0, 900.0], np.float32))
    return np.random.default_rng(0).integers(0, 5000, (3, 4, 2, 2)).astype(np.uint16), norm


def test_camera_counts_are_normalised_by_the_runner_for_a_backend_that_takes_float_only() -> None:
    counts, norm = _counts()
    backend = _FloatOnly()
    runner = ModelRunner(backend, None, (0.0, 1.0), norm=norm)
    assert not runner.takes_raw and "float32 inputs only" in runner.raw_input_note
    runner.infer(counts)
    np.testing.assert_array_equal(backend.seen[-1], normalise_batch(counts, norm))
    np.testing.assert_array_equal(backend.seen[-1][0], normalise(counts[0].reshape(2, 2, 2, 2), norm))


def test_onnxruntime_is_offered_the_normalisation_when_raw_input_is_on() -> None:
    counts, norm = _counts()
    model = conv_chain(1, channels=4, patch=2)
    on = ModelRunner(OnnxRuntimeBackend(model, threads=1), None, (0.0, 1.0), norm=norm, raw_input="on")
    off = ModelRunner(OnnxRuntimeBackend(model, threads=1), None, (0.0, 1.0), norm=norm, raw_input="off")
    auto = ModelRunner(OnnxRuntimeBackend(model, threads=1), None, (0.0, 1.0), norm=norm)  # on the CPU: it costs more
    assert on.takes_raw and on.raw_input_note == ""
    assert not off.takes_raw and "raw_input = off" in off.raw_input_note
    assert not auto.takes_raw and "raw_input = auto leaves it off" in auto.raw_input_note
    with pytest.raises(ValueError, match="valid: auto, on, off"):
        ModelRunner(OnnxRuntimeBackend(model, threads=1), None, (0.0, 1.0), norm=norm, raw_input="yes")
    np.testing.assert_allclose(on.infer(counts), off.infer(counts), rtol=0, atol=1e-6)  # inside the model / here


def test_the_fallback_is_offered_the_normalisation_when_the_runner_switches() -> None:
    counts, norm = _counts()
    model = conv_chain(1, channels=4, patch=2)
    runner = ModelRunner(_FloatOnly(), lambda: OnnxRuntimeBackend(model, threads=1), (0.0, 1.0), norm=norm,
                         raw_input="on")
    runner.backend.infer = lambda x: np.full((x.shape[0], 3, 2, 2), np.nan, np.float32)  # type: ignore[method-assign]
    y = runner.infer(counts)  # NaN from the primary: switched to the fallback, which takes the counts itself
    assert runner.degraded and runner.takes_raw and runner.raw_input_note == ""
    want = OnnxRuntimeBackend(model, threads=1).infer(normalise_batch(counts, norm))
    np.testing.assert_allclose(y, want, rtol=0, atol=1e-6)
