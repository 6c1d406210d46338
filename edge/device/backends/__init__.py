"""Inference backends behind one small protocol.

A backend maps a batch of PLS stacks to stained patches::

    infer(batch: float32 (B, I·C, P, P) in [0, 1]) -> float32 (B, 3, P, P) in [0, 1]

Channels are in the bundle's recipe order, image-major (``image * 3 + rgb``). Backends accept any
``B >= 1``; they pad / split internally to whatever batch shapes their engine was built for.

``open_backend("onnxruntime", model_path)`` or ``open_backend("tensorrt", engine_path, ...)`` picks
the implementation from one literal table; the library of each backend is imported only when it is
opened, so importing this package never needs TensorRT or a GPU.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

from edge.device.errors import BackendError


@runtime_checkable
class Backend(Protocol):
    """What the daemon needs from an inference engine."""

    @property
    def name(self) -> str:
        """``"onnxruntime"`` or ``"tensorrt"`` (plus the precision, e.g. ``"onnxruntime-fp16"``)."""
        ...

    @property
    def providers_loaded(self) -> tuple[str, ...]:
        """The execution providers / devices actually in use (ONNX Runtime falls back silently)."""
        ...

    def infer(self, batch: NDArray[np.float32]) -> NDArray[np.float32]:
        """``(B, I·C, P, P)`` float32 → ``(B, 3, P, P)`` float32; raises :class:`BackendError` on bad shapes."""
        ...

    def close(self) -> None:
        """Release sessions, contexts and device buffers; the backend is unusable afterwards."""
        ...


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


def check_batch(batch: object, channels: int, patch: int, where: str) -> NDArray[np.float32]:
    """The batch as a C-contiguous float32 ``(B, channels, patch, patch)`` array, or a :class:`BackendError`.

    ``patch = 0``: a model with free spatial axes, any ``(B, channels, H, W)`` is accepted.
    """
    arr = np.asarray(batch)
    size_ok = arr.ndim == 4 and (arr.shape[2:] == (patch, patch) or (patch == 0 and min(arr.shape[2:]) >= 1))
    if not size_ok or arr.shape[1] != channels or arr.shape[0] < 1:
        raise BackendError(f"{where}: expected a batch (B>=1, {channels}, {patch}, {patch}), found shape "
                           f"{arr.shape}; stack the cells of the bundle's recipe channel-major")
    if arr.dtype != np.float32:
        raise BackendError(f"{where}: expected float32 inputs in [0, 1], found {arr.dtype}; normalise first")
    return np.ascontiguousarray(arr)


__all__ = ["BACKENDS", "Backend", "check_batch", "open_backend"]
