"""Inference backends behind one small protocol.

A backend maps a batch of PLS stacks to stained patches::

    infer(batch: float32 (B, I·C, P, P) in [0, 1]) -> float32 (B, 3, P, P) in [0, 1]

Channels are in the bundle's recipe order, image-major (``image * 3 + rgb``). Backends accept any
``B >= 1``; they pad / split internally to whatever batch shapes their engine was built for. ONNX
Runtime and OpenVINO also take the cells' ``uint16`` camera counts once told the normalisation
(:class:`TakesRaw`): the model then normalises them on its own threads.

``open_backend("onnxruntime", model_path)`` or ``open_backend("tensorrt", engine_path, ...)`` picks
the implementation from one literal table; the library of each backend is imported only when it is
opened, so importing this package never needs TensorRT or a GPU.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edge.device.backends.base import (
    Backend,
    FixesBatch,
    ProfilesLayers,
    ReportsProperties,
    TakesRaw,
    accepts_raw,
    check_batch,
    layers_per_cell,
    plugin_properties_of,
)
from edge.device.errors import BackendError

#: Backend kinds, by name. Values are "module:class"; the module is imported on open only.
BACKENDS: dict[str, str] = {
    "onnxruntime": "edge.device.backends.onnxruntime:OnnxRuntimeBackend",
    "tensorrt": "edge.device.backends.tensorrt:TensorRTBackend",
}


def open_backend(kind: str, model: Path, **options: Any) -> Backend:
    """Open backend ``kind`` on ``model`` (an ONNX file for onnxruntime, an engine file for tensorrt).

    ``options`` go to the backend's constructor (see :class:`edge.device.backends.onnxruntime.OnnxRuntimeBackend`
    and :class:`edge.device.backends.tensorrt.TensorRTBackend`).
    """
    if kind not in BACKENDS:
        raise BackendError(f"unknown backend {kind!r}; valid: {', '.join(BACKENDS)}")
    if kind == "onnxruntime":
        from edge.device.backends.onnxruntime import OnnxRuntimeBackend

        return OnnxRuntimeBackend(model, **options)
    from edge.device.backends.tensorrt import TensorRTBackend

    return TensorRTBackend(model, **options)


__all__ = ["BACKENDS", "Backend", "FixesBatch", "ProfilesLayers", "ReportsProperties", "TakesRaw", "accepts_raw",
           "check_batch", "layers_per_cell", "open_backend", "plugin_properties_of"]
