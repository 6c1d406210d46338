"""What every backend is (:class:`Backend`) and the batch check they share."""

from __future__ import annotations

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


@runtime_checkable
class TakesRaw(Protocol):
    """A backend that can normalise camera counts itself (:func:`edge.device.onnxshape.raw_input_graph`):
    after :meth:`accept_raw`, ``infer`` also takes ``uint16`` ``(B, I·C, P, P)`` batches and runs them
    through the model with ``clip((raw − offset) / scale, 0, 1)`` per channel in front, on the
    runtime's threads; float32 batches still run the model as opened."""

    @property
    def accepts_raw(self) -> bool:
        """True once :meth:`accept_raw` succeeded."""
        ...

    @property
    def raw_input_pays(self) -> bool:
        """Whether normalising inside the model saves CPU over the processing thread's numpy (``auto``)."""
        ...

    def accept_raw(self, offset: NDArray[np.float32], scale: NDArray[np.float32]) -> None:
        """Prepare the raw-input model for ``offset`` / ``scale`` ``(I·C,)``; raises :class:`BackendError`."""
        ...


def accepts_raw(backend: Backend) -> bool:
    """Whether ``backend`` takes ``uint16`` camera counts now (:class:`TakesRaw`)."""
    return isinstance(backend, TakesRaw) and backend.accepts_raw


@runtime_checkable
class FixesBatch(Protocol):
    """A backend that runs a batch of one size faster when the model is prepared for exactly that size
    (OpenVINO's CPU plugin with a static input shape); other sizes still run as before."""

    def fix_batch(self, size: int, streams: int = 1) -> None:
        """Prepare the model (as it takes batches now: camera counts or float32) for batches of ``size``, run
        as ``streams`` equal parts at once (a divisor of ``size``); raises :class:`BackendError`."""
        ...


@runtime_checkable
class ProfilesLayers(Protocol):
    """A backend whose runtime can say where a batch's time goes, by node type and kernel (OpenVINO's
    profiling counters)."""

    def layer_profile(self, batch: NDArray[Any], repeats: int = 5) -> dict[str, float]:
        """ms per call of ``batch`` by ``"node type (kernel)"``, largest first; raises :class:`BackendError`."""
        ...


def layers_per_cell(backend: ProfilesLayers, batch: NDArray[Any]) -> dict[str, float]:
    """:meth:`ProfilesLayers.layer_profile` of ``batch`` in ms per cell."""
    return {k: round(v / len(batch), 3) for k, v in backend.layer_profile(batch).items()}


@runtime_checkable
class ReportsProperties(Protocol):
    """A backend that can say what its runtime runs the model with (OpenVINO's compiled properties:
    precision hint, performance hint, threads, pinning), as the runtime resolved them."""

    def plugin_properties(self) -> dict[str, str]:
        """``{property: value}`` as the compiled model reports them; raises :class:`BackendError` once closed."""
        ...


def plugin_properties_of(backend: Backend) -> dict[str, str]:
    """What ``backend``'s runtime runs the model with (:class:`ReportsProperties`), ``{}`` for a backend
    that does not say (ONNX Runtime, TensorRT) or is closed (a flash swapped it out meanwhile)."""
    if not isinstance(backend, ReportsProperties):
        return {}
    try:
        return backend.plugin_properties()
    except BackendError:
        return {}


def check_batch(batch: object, channels: int, patch: int, where: str, raw: bool = False) -> NDArray[Any]:
    """The batch as a C-contiguous float32 ``(B, channels, patch, patch)`` array, or a :class:`BackendError`.

    ``patch = 0``: a model with free spatial axes, any ``(B, channels, H, W)`` is accepted. ``raw``: the
    backend takes ``uint16`` camera counts too (:class:`TakesRaw`).
    """
    arr = np.asarray(batch)
    size_ok = arr.ndim == 4 and (arr.shape[2:] == (patch, patch) or (patch == 0 and min(arr.shape[2:]) >= 1))
    if not size_ok or arr.shape[1] != channels or arr.shape[0] < 1:
        raise BackendError(f"{where}: expected a batch (B>=1, {channels}, {patch}, {patch}), found shape "
                           f"{arr.shape}; stack the cells of the bundle's recipe channel-major")
    if arr.dtype != np.float32 and not (raw and arr.dtype == np.uint16):
        also = " or uint16 camera counts" if raw else ""
        raise BackendError(f"{where}: expected float32 inputs in [0, 1]{also}, found {arr.dtype}; normalise first")
    return np.ascontiguousarray(arr)
