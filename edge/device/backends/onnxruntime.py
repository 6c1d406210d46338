"""ONNX Runtime backend: the device's fallback and the host's reference runtime.

ONNX Runtime silently drops a requested execution provider it cannot load (a missing CUDA library,
a CPU-only wheel) and runs on the CPU instead. :class:`OnnxRuntimeBackend` compares the providers it
asked for with ``session.get_providers()`` and refuses to start on a fallback unless told to.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort
from numpy.typing import NDArray

from edge.device.backends.base import check_batch
from edge.device.errors import BackendError, BackendUnavailableError
from edge.device.onnxshape import RAW_INPUT, raw_input_graph

log = logging.getLogger(__name__)

_ORT_TYPES = {"tensor(float)": "fp32", "tensor(float16)": "fp16"}


def session_options(threads: int = 0) -> ort.SessionOptions:
    """Quiet sessions (no per-initializer warnings) with ``threads`` intra-op threads (0 = ORT's default).

    Idle intra-op threads sleep instead of spinning: in the daemon they share the cores with the
    processing thread (and on a shared machine with neighbours), and a spinning worker burns the core
    that QC and detection need. Measured with ``bench/edge_pipeline.py`` on a busy 2-core VM: CPU per
    cell 28-32 → 21-22 ms in the pipeline, 20-21 → 14.5 ms for the backend alone.
    """
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return opts


class OnnxRuntimeBackend:
    """An ONNX model in an :class:`onnxruntime.InferenceSession`.

    ``model`` is a path or the serialised model. ``providers`` are tried in order; unless
    ``allow_fallback``, the first one must actually be loaded. Models with fp16 graph inputs get their
    inputs cast to float16; outputs always come back as float32 ``(B, 3, P, P)``. ``precision`` (the
    manifest's ``fp32`` / ``fp16`` / ``int8``) only labels the backend: bundles keep float32 graph I/O.
    :meth:`accept_raw` opens a second session on the model with a normalising prefix
    (:func:`edge.device.onnxshape.raw_input_graph`) for ``uint16`` batches.
    """

    def __init__(self, model: Path | bytes, providers: Sequence[str] = ("CPUExecutionProvider",),
                 allow_fallback: bool = False, threads: int = 0, label: str = "", precision: str = "") -> None:
        self._model, self._threads, self._asked = model, threads, tuple(providers)
        where = label or (str(model) if not isinstance(model, bytes) else "model")
        self._session: ort.InferenceSession | None = self._open(model if isinstance(model, bytes) else str(model),
                                                                where)
        self._raw: ort.InferenceSession | None = None
        loaded = tuple(self._session.get_providers())
        if providers and providers[0] not in loaded and not allow_fallback:
            raise BackendUnavailableError(
                f"asked ONNX Runtime for {providers[0]}, it loaded only {list(loaded)}; install the matching "
                f"onnxruntime build (available here: {ort.get_available_providers()}) or allow the fallback")
        self._providers = loaded
        inp, out = self._session.get_inputs()[0], self._session.get_outputs()[0]
        self.input_name: str = inp.name
        self.output_name: str = out.name
        self.precision = precision or _ORT_TYPES.get(inp.type, inp.type)
        self._in_dtype = np.float16 if inp.type == "tensor(float16)" else np.float32
        shape = inp.shape
        spatial_free = len(shape) == 4 and not any(isinstance(d, int) for d in shape[2:])
        if len(shape) != 4 or not isinstance(shape[1], int) or not (spatial_free or isinstance(shape[2], int)):
            raise BackendError(f"model input {inp.name!r} has shape {shape}; expected (batch, C, P, P) "
                               "with static C and P, or (batch, C, height, width) with static C")
        self.in_channels: int = int(shape[1])
        #: The static patch size, or 0 when the model takes any height and width (whole-field tiles).
        self.patch_size: int = 0 if spatial_free else int(shape[2])
        self._label = label or "onnxruntime"
        log.info("onnxruntime session on %s (%s, %d input channels, %d px)", list(loaded), self.precision,
                 self.in_channels, self.patch_size)

    def _open(self, source: str | bytes, where: str) -> ort.InferenceSession:
        try:
            return ort.InferenceSession(source, sess_options=session_options(self._threads),
                                        providers=list(self._asked))
        except Exception as exc:  # ORT raises its own Fail / InvalidGraph / NoSuchFile types
            raise BackendError(f"ONNX Runtime cannot load {where}: {exc}") from exc

    @property
    def name(self) -> str:
        return f"onnxruntime-{self.precision}"

    @property
    def accepts_raw(self) -> bool:
        return self._raw is not None

    @property
    def raw_input_pays(self) -> bool:
        """On a GPU: half the bytes to the device and the prefix on the GPU. Not on the CPU: ONNX Runtime
        runs Cast, Sub, Mul and Clip as four passes (~0.7 ms of CPU per 132-channel 64² cell against
        numpy's ~0.4 in the processing thread, ``bench/raw_input.py``)."""
        return self._providers[:1] != ("CPUExecutionProvider",)

    def accept_raw(self, offset: NDArray[np.float32], scale: NDArray[np.float32]) -> None:
        """Open the raw-input session (``uint16`` ``(B, I·C, P, P)`` in, normalised by ``offset`` / ``scale``
        ``(I·C,)`` in the graph); raises :class:`BackendError` when the model cannot take it."""
        if self._session is None:
            raise BackendError(f"{self._label}: backend is closed")
        if self._in_dtype != np.float32:
            raise BackendError(f"{self._label}: the model's input is {self._in_dtype.__name__}; a raw-input prefix "
                               "feeds float32 only")
        model = self._model if isinstance(self._model, bytes) else Path(self._model).read_bytes()
        self._raw = self._open(raw_input_graph(model, offset, scale), f"{self._label} (raw input)")

    @property
    def providers_loaded(self) -> tuple[str, ...]:
        return self._providers

    def infer(self, batch: NDArray[np.float32]) -> NDArray[np.float32]:
        """``(B, I·C, P, P)`` float32 (or uint16 after :meth:`accept_raw`) → ``(B, 3, P, P)`` float32."""
        if self._session is None:
            raise BackendError(f"{self._label}: backend is closed")
        x = check_batch(batch, self.in_channels, self.patch_size, self._label, raw=self._raw is not None)
        if x.dtype == np.uint16 and self._raw is not None:
            y = self._raw.run([self.output_name], {RAW_INPUT: x})[0]
        else:
            y = self._session.run([self.output_name], {self.input_name: x.astype(self._in_dtype, copy=False)})[0]
        return np.asarray(y, dtype=np.float32)

    def close(self) -> None:
        self._session = None
        self._raw = None
