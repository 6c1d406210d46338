"""The golden self-test of a bundle (torch-free): every model of the manifest run on the golden
inputs it was exported with must reproduce the golden outputs on this runtime — within the model's
absolute tolerance and through the SSIM gate (:func:`edge.device.manifest.ssim_gate`). Run at
install (:func:`edge.device.bundle.install`), on a flashed slot and when a backend opens a bundle."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import NDArray

from edge.device.backends.base import Backend
from edge.device.errors import BundleError, BundleFormatError, ModelLoadError, SelfTestError
from edge.device.manifest import GoldenResult, Manifest, StyleModel, compare_outputs, ssim_gate


def load_npy(data: bytes, name: str) -> NDArray[np.float32]:
    """A float32 array from ``.npy`` bytes (no pickles)."""
    try:
        arr = np.load(io.BytesIO(data), allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise BundleFormatError(f"{name} is not a readable .npy array: {exc}") from exc
    if arr.dtype != np.float32 or arr.ndim != 4:
        raise BundleFormatError(f"{name}: expected a float32 (B, C, P, P) array, found {arr.dtype} {arr.shape}")
    return arr


def golden_pairs(manifest: Manifest, read: Callable[[str], bytes]
                 ) -> list[tuple[NDArray[np.float32], NDArray[np.float32]]]:
    """The manifest's golden (input, output) arrays, each member read by ``read``."""
    return [(load_npy(read(g.input), g.input), load_npy(read(g.output), g.output)) for g in manifest.golden]


def self_test(manifest: Manifest, read: Callable[[str], bytes]) -> list[GoldenResult]:
    """Run every model of the manifest on the golden inputs with ONNX Runtime (CPU); raise on failure.

    A model passes when its absolute errors meet its tolerance and its outputs meet the SSIM gate
    against the golden outputs (:func:`edge.device.manifest.ssim_gate`, SSIM >= 0.995)."""
    from edge.device.backends.onnxruntime import OnnxRuntimeBackend

    pairs = golden_pairs(manifest, read)
    results = []
    for model in manifest.models:
        try:
            backend = OnnxRuntimeBackend(read(model.file), label=model.file, precision=model.precision)
        except BundleError:
            raise
        except Exception as exc:
            raise ModelLoadError(f"{model.file} does not load in ONNX Runtime: {exc}") from exc
        try:
            got = np.concatenate([backend.infer(x) for x, _ in pairs])
        finally:
            backend.close()
        want = np.concatenate([y for _, y in pairs])
        result = compare_outputs(got, want, model.tolerance, model.precision)
        gate = ssim_gate(got, want, model.precision)  # a cheaper precision must also keep the structure
        if not result.passed or not gate.passed:
            raise SelfTestError(f"golden self-test failed for {model.file}: {result.describe()}; {gate.describe()}; "
                                "the model does not reproduce the outputs it was exported with on this runtime")
        results.append(result)
    for style in manifest.styles:
        results.append(_self_test_style(style, read))
    return results


def openvino_self_test(manifest: Manifest, read: Callable[[str], bytes], backend: Backend) -> list[Any]:
    """The golden self-test of an OpenVINO backend opened on the bundle's fp32 ONNX; raises on failure.

    fp32 must meet the fp32 model's absolute tolerance; every precision (bf16 rounds each layer's
    inputs, so absolute errors grow with depth) must meet the SSIM gate against the golden outputs
    (:func:`edge.device.manifest.ssim_gate`, SSIM >= 0.995).
    """
    pairs = golden_pairs(manifest, read)
    got = np.concatenate([backend.infer(x) for x, _ in pairs])
    want = np.concatenate([y for _, y in pairs])
    results: list[Any] = [ssim_gate(got, want, backend.name)]
    if backend.name.endswith("fp32"):
        results.append(compare_outputs(got, want, manifest.model("fp32").tolerance, backend.name))
    failed = [r.describe() for r in results if not r.passed]
    if failed:
        raise SelfTestError(f"golden self-test failed for {backend.name}: {'; '.join(failed)}; this runtime does "
                            "not reproduce the bundle's outputs")
    return results


def _self_test_style(style: StyleModel, read: Callable[[str], bytes]) -> GoldenResult:
    from edge.device.backends.onnxruntime import OnnxRuntimeBackend

    x, want = load_npy(read(style.golden.input), style.golden.input), load_npy(read(style.golden.output),
                                                                                style.golden.output)
    try:
        backend = OnnxRuntimeBackend(read(style.file), label=style.file, precision="fp32")
    except Exception as exc:
        raise ModelLoadError(f"style {style.name}: {style.file} does not load in ONNX Runtime: {exc}") from exc
    try:
        got = backend.infer(x)
    finally:
        backend.close()
    result = compare_outputs(got, want, style.tolerance, f"style:{style.name}")
    if not result.passed:
        raise SelfTestError(f"golden self-test failed for style {style.name} ({style.file}): {result.describe()}")
    return result
