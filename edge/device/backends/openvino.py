"""OpenVINO backend: the bundle's fp32 ONNX on OpenVINO's CPU plugin, fp32 or bf16; or its int8 IR.

bf16 is not a bundle member: the CPU plugin runs the fp32 graph with
``INFERENCE_PRECISION_HINT = bf16`` where the CPU has native bf16 (AVX-512 BF16 or AMX; OpenVINO
lists ``"BF16"`` in the plugin's ``OPTIMIZATION_CAPABILITIES``). On a CPU without it the backend
refuses bf16 (:func:`bf16_problem` says why) rather than run an emulated, slower bf16.

int8 is a bundle member of its own, an OpenVINO IR (xml + bin) that NNCF quantised at export
(:mod:`export.openvino_int8`); what it keeps in float runs in bf16 where the CPU has it natively,
else in fp32.

``import openvino`` also imports its model converter (``openvino.tools.ovc``), which sends a
telemetry event to Google Analytics from a background thread on every import unless the user opted
out. A device must not phone home, so :func:`import_openvino` imports the runtime with the converter
blocked (``openvino/__init__.py`` skips it on ImportError); nothing here needs the converter.
OpenVINO is imported only when a backend is opened, so the rest of :mod:`edge.device.backends`
never needs it.
"""

from __future__ import annotations

import functools
import importlib
import logging
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from edge.device.backends.base import check_batch
from edge.device.errors import BackendError, BackendUnavailableError
from edge.device.onnxshape import raw_input_graph, raw_normalisation

log = logging.getLogger(__name__)

#: Precisions this backend runs: the plugin's inference precision hint for each.
PRECISIONS = {"fp32": "f32", "bf16": "bf16", "int8": "bf16"}


_CONVERTER = "openvino.tools.ovc"


def import_blocking(name: str, blocked: str) -> Any:
    """``import name`` while module ``blocked`` cannot be imported (the packages here skip an optional
    part on ImportError); ``blocked`` is importable again afterwards. Raises ImportError when ``name``
    is not installed."""
    if name in sys.modules:
        return sys.modules[name]
    block = blocked not in sys.modules
    if block:
        sys.modules[blocked] = None  # type: ignore[assignment]  # makes its import raise ImportError
    try:
        return importlib.import_module(name)
    finally:
        if block and sys.modules.get(blocked, 0) is None:
            del sys.modules[blocked]


def import_openvino() -> Any:
    """``import openvino`` without its converter's import-time telemetry (see the module docstring).

    Raises ImportError when OpenVINO is not installed."""
    return import_blocking("openvino", _CONVERTER)


@functools.cache
def shared_core() -> Any:
    """The process's one ``openvino.Core``, made on first use and kept until exit; every backend and tool
    here compiles through it.

    One Core, not one per backend: the CPU plugin gives the thread that loads it an alternate signal
    stack of its own and, when its Core is destroyed, puts back the stack it found and frees its own. Two
    Cores destroyed in the order they were made (a model reopened beside the old one, then the old one
    closed) leave the thread on the freed stack, and the next signal a Python handler takes (SIGTERM,
    Ctrl-C, a child's SIGCHLD) kills the process with SIGSEGV (OpenVINO 2026.4)."""
    try:
        ov = import_openvino()
    except ImportError as exc:
        raise BackendUnavailableError(f"OpenVINO is not installed (import openvino failed: {exc}); install "
                                      "stainless[openvino] or use the ONNX Runtime backend") from exc
    return ov.Core()


def cpu_capabilities(core: Any | None = None) -> tuple[str, ...]:
    """The CPU plugin's ``OPTIMIZATION_CAPABILITIES`` (``"FP32"``, ``"BF16"``, ``"INT8"``, ...)."""
    core = core if core is not None else shared_core()
    return tuple(str(c) for c in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES"))


def bf16_problem(capabilities: tuple[str, ...]) -> str | None:
    """``None`` when the CPU runs bf16 natively, else why bf16 is refused (pure)."""
    if "BF16" in capabilities:
        return None
    return (f"this CPU has no native bf16 (OpenVINO's CPU plugin offers {list(capabilities)}; bf16 needs "
            "AVX-512 BF16 or AMX); run fp32 here")


#: Properties reported besides those :func:`compile_properties` sets: what the plugin derived from them.
REPORTED = ("NUM_STREAMS",)


def property_text(value: Any) -> str:
    """An OpenVINO property value as text: an element type by its short name (``f32``, ``bf16``), an enum
    by its name, anything else by ``str`` (pure)."""
    if hasattr(value, "get_type_name"):
        return str(value.get_type_name())
    name = getattr(value, "name", None)
    return name if isinstance(name, str) else str(value)


def compile_properties(precision: str, threads: int = 0) -> dict[str, Any]:
    """The CPU plugin's properties for ``compile_model`` (pure).

    ``threads``: inference threads, as ONNX Runtime's ``intra_op_num_threads`` (0 = the plugin's
    default, one per core). Latency hint (one stream). Thread pinning off: on Linux the plugin binds
    its inference threads to cores by default, and in the daemon they share the cores with the
    processing thread (and on a shared machine with neighbours); a pinned thread likely waits for its
    busy core instead of moving to the free one. Unpinned, CPU per cell fell 12-16 % with
    ``bench/edge_pipeline.py`` on a busy 2-core VM (README, "Where a field's time goes").
    """
    config: dict[str, Any] = {"INFERENCE_PRECISION_HINT": PRECISIONS[precision], "PERFORMANCE_HINT": "LATENCY",
                              "ENABLE_CPU_PINNING": False}
    if threads:
        config["INFERENCE_NUM_THREADS"] = threads
    return config


def layer_table(entries: Iterable[tuple[str, str, float]]) -> dict[str, float]:
    """Time by ``"node type (kernel)"`` from profiling entries ``(node_type, exec_type, ms)``, summed,
    largest first; entries of no time (nodes the plugin fused into others) are left out (pure)."""
    table: dict[str, float] = {}
    for node, kernel, ms in entries:
        if ms > 0:
            key = f"{node} ({kernel})"
            table[key] = table.get(key, 0.0) + ms
    return dict(sorted(table.items(), key=lambda kv: -kv[1]))


def raw_input_ir(graph: Any, offset: NDArray[np.float32], scale: NDArray[np.float32]) -> Any:
    """An OpenVINO model (read from an IR) taking ``uint16`` camera counts, normalised per channel as the
    ONNX prefix does (:func:`edge.device.onnxshape.raw_input_graph`): ``clip((float(raw) − offset) ·
    (1 / scale), 0, 1)``, by OpenVINO's preprocessing."""
    ov = import_openvino()
    from openvino import opset13 as ops
    from openvino.preprocess import PrePostProcessor

    offset, scale = raw_normalisation(offset, scale)
    shape = (1, len(offset), 1, 1)
    inv = (np.float32(1.0) / scale).reshape(shape)

    def normalise(node: Any) -> Any:
        centred = ops.subtract(node, ops.constant(offset.reshape(shape)))
        return ops.clamp(ops.multiply(centred, ops.constant(inv)), 0.0, 1.0).output(0)

    ppp = PrePostProcessor(graph)
    ppp.input(0).tensor().set_element_type(ov.Type.u16)
    ppp.input(0).preprocess().convert_element_type(ov.Type.f32).custom(normalise)
    return ppp.build()


class OpenVinoBackend:
    """An ONNX model (path or serialised bytes), or an OpenVINO IR (``model`` the xml bytes, ``weights``
    the bin bytes), compiled for OpenVINO's CPU plugin.

    ``precision``: ``fp32`` or ``bf16`` (the inference precision hint; see the module docstring), or
    ``int8`` for a quantised IR.
    ``threads``: inference threads (0 = the plugin's default). Outputs are float32 ``(B, 3, P, P)``.
    :meth:`accept_raw` compiles the model with a normalising prefix
    (:func:`edge.device.onnxshape.raw_input_graph`; the CPU plugin fuses the chain) for ``uint16`` batches.
    """

    def __init__(self, model: Path | bytes, precision: str = "fp32", threads: int = 0, label: str = "",
                 weights: bytes | None = None) -> None:
        self._label = label or (str(model) if not isinstance(model, bytes) else "openvino")
        if precision not in PRECISIONS:
            raise BackendError(f"{self._label}: OpenVINO precision {precision!r}; valid: {', '.join(PRECISIONS)}")
        core = self._core = shared_core()
        self._model, self._config = model, compile_properties(precision, threads)
        self._raw: Any = None  # the raw-input model's infer request, after accept_raw
        self._norm: tuple[NDArray[np.float32], NDArray[np.float32]] | None = None  # accept_raw's offset, scale
        self._fixed: tuple[int, bool, tuple[Any, ...]] | None = None  # fix_batch: size, takes raw, requests
        self._weights = weights
        self.capabilities = cpu_capabilities(core)
        why = bf16_problem(self.capabilities)
        if precision == "bf16" and why is not None:
            raise BackendUnavailableError(f"{self._label}: bf16 asked for, but {why}")
        if precision == "int8" and why is not None:  # what the IR keeps in float
            self._config["INFERENCE_PRECISION_HINT"] = PRECISIONS["fp32"]
        graph = self._read(model if isinstance(model, bytes) else str(model), weights)
        inp = graph.inputs[0]
        shape = inp.get_partial_shape()
        if shape.rank.get_length() != 4 or not shape[1].is_static:
            raise BackendError(f"{self._label}: model input has shape {shape}; expected (batch, C, P, P) with static C")
        self.in_channels: int = shape[1].get_length()
        #: The static patch size, or 0 when the model takes any height and width.
        self.patch_size: int = shape[2].get_length() if shape[2].is_static else 0
        self._compiled: Any = self._compile(graph, self._label)
        self._request: Any = self._compiled.create_infer_request()
        keys = (*compile_properties(precision, threads=1), *REPORTED)  # threads=1: INFERENCE_NUM_THREADS too
        self._properties = {k: property_text(self._compiled.get_property(k)) for k in keys}
        self.precision = precision
        self.device_name = str(core.get_property("CPU", "FULL_DEVICE_NAME"))
        log.info("openvino on %s (%s, %d input channels, %d px)", self.device_name, precision, self.in_channels,
                 self.patch_size)

    def _read(self, model: str | bytes, weights: bytes | None = None) -> Any:
        try:
            return self._core.read_model(model, weights or b"")
        except Exception as exc:  # OpenVINO raises RuntimeError / its own types for unreadable graphs
            raise BackendError(f"OpenVINO cannot read {self._label}: {exc}") from exc

    def _compile(self, graph: Any, where: str, extra: dict[str, Any] | None = None) -> Any:
        config = self._config | (extra or {})
        try:
            return self._core.compile_model(graph, "CPU", config)
        except Exception as exc:
            raise BackendError(f"OpenVINO cannot compile {where} for the CPU ({config}): {exc}") from exc

    @property
    def name(self) -> str:
        return f"openvino-{self.precision}"

    @property
    def fixed_batch(self) -> tuple[int, bool] | None:
        """:meth:`fix_batch`'s size and whether that model takes camera counts; ``None`` before."""
        return None if self._fixed is None else self._fixed[:2]

    @property
    def accepts_raw(self) -> bool:
        return self._raw is not None

    @property
    def raw_input_pays(self) -> bool:
        """The CPU plugin fuses Sub, Mul and Clip with the model's own first element-wise ops into one node
        (the u16 convert stays a node of its own): the model costs no more, the processing thread ~0.45 ms
        less per cell (``bench/raw_input.py``). An IR gets the same prefix from OpenVINO's preprocessing."""
        return True

    def accept_raw(self, offset: NDArray[np.float32], scale: NDArray[np.float32]) -> None:
        """Compile the raw-input model (``uint16`` ``(B, I·C, P, P)`` in, normalised by ``offset`` / ``scale``
        ``(I·C,)`` in the graph), with the same properties; raises :class:`BackendError` when it cannot."""
        if self._request is None:
            raise BackendError(f"{self._label}: backend is closed")
        before, self._norm = self._norm, (offset, scale)
        try:
            self._raw = self._compile(self._graph(), f"{self._label} (raw input)").create_infer_request()
        except BaseException:
            self._norm = before
            raise
        if self._fixed is not None:  # the fixed-size model follows what the backend takes
            self.fix_batch(self._fixed[0], len(self._fixed[2]))

    def _graph(self, raw: bool | None = None) -> Any:
        """The model as the backend serves it: taking camera counts after :meth:`accept_raw`, else float32
        (``raw`` given: the one or the other)."""
        model = self._model if isinstance(self._model, bytes) else Path(self._model).read_bytes()
        if self._norm is None or raw is False:
            return self._read(model, self._weights)
        if self._weights is not None:
            return raw_input_ir(self._read(model, self._weights), *self._norm)
        return self._read(raw_input_graph(model, *self._norm))

    def _sized(self, size: int, extra: dict[str, Any] | None = None, raw: bool | None = None) -> Any:
        """The model as it is served (:meth:`_graph`; ``raw``: as there) compiled for batches of exactly
        ``size``, with the backend's properties (and ``extra``)."""
        if self._request is None:
            raise BackendError(f"{self._label}: backend is closed")
        if size < 1 or not self.patch_size:
            raise BackendError(f"{self._label}: no fixed batch of {size} for a model of patch size "
                               f"{self.patch_size or 'any'}; expected a size >= 1 and a static patch size")
        graph = self._graph(raw)
        try:
            graph.reshape([size, self.in_channels, self.patch_size, self.patch_size])
        except Exception as exc:  # OpenVINO raises RuntimeError for shapes the graph cannot take
            raise BackendError(f"{self._label}: cannot fix the batch at {size}: {exc}") from exc
        return self._compile(graph, f"{self._label} (batch {size})", extra)

    def fix_batch(self, size: int, streams: int = 1) -> None:
        """Also compile the model as it is served (:meth:`_graph`) for batches of exactly ``size``, the
        batcher's full batch: with a static input shape the CPU plugin plans every layer once for it, and
        full batches run 10-15 % faster (``bench/backends.py``: ``ms_per_cell`` against
        ``ms_per_cell_any_batch``); other sizes run the any-batch model. Costs a second compiled model's memory.

        ``streams`` > 1 (a divisor of ``size``): a full batch runs as that many equal parts at once, each on a
        stream of its own (``NUM_STREAMS``; the inference threads shared among them). On two cores two
        single-thread streams ran the seed-size int8 model's full batches 5-11 % faster than one stream of
        two threads, whose threads meet after every layer (``bench/backends.py``: ``ms_per_cell`` against
        ``ms_per_cell_one_stream``); in the daemon, whose cores are full, the same (README, issue 19)."""
        if streams < 1 or size % streams:
            raise BackendError(f"{self._label}: a batch of {size} cannot run as {streams} equal parts on streams of "
                               "their own; expected a stream count >= 1 that divides the batch")
        extra = {"NUM_STREAMS": streams} if streams > 1 else None
        compiled = self._sized(size // streams, extra)
        requests = tuple(compiled.create_infer_request() for _ in range(streams))
        self._fixed = (size, self._norm is not None, requests)
        self._properties["FIXED_BATCH"] = str(size)
        self._properties["FIXED_BATCH_STREAMS"] = str(streams)

    def layer_profile(self, batch: NDArray[np.float32], repeats: int = 5) -> dict[str, float]:
        """Where the model's time goes on ``batch``: ms per call by node type and kernel
        (:func:`layer_table`), the mean of ``repeats`` calls after a warm-up, from the CPU plugin's
        profiling counters. Measured on a model of its own (the one served, compiled for exactly
        ``len(batch)`` with ``PERF_COUNT`` on), so the served models never pay for the counters."""
        x = check_batch(batch, self.in_channels, self.patch_size, self._label, raw=self._raw is not None)
        request = self._sized(len(x), {"PERF_COUNT": True}, raw=x.dtype == np.uint16).create_infer_request()
        request.infer({0: x})
        entries, n = [], max(repeats, 1)
        for _ in range(n):
            request.infer({0: x})
            entries += [(p.node_type, p.exec_type, p.real_time.total_seconds() * 1e3 / n)
                        for p in request.profiling_info]
        return layer_table(entries)

    def plugin_properties(self) -> dict[str, str]:
        """What the compiled model runs with, as the plugin resolved it: each key :func:`compile_properties`
        sets (``INFERENCE_NUM_THREADS`` also when left to the plugin) and the streams the hint gave. Read
        once when compiled (they do not change), so ``status`` never calls into the plugin mid-batch."""
        if self._compiled is None:
            raise BackendError(f"{self._label}: backend is closed")
        return dict(self._properties)

    @property
    def providers_loaded(self) -> tuple[str, ...]:
        return (f"openvino:CPU:{self.precision}",)

    def infer(self, batch: NDArray[np.float32]) -> NDArray[np.float32]:
        """``(B, I·C, P, P)`` float32 (or uint16 after :meth:`accept_raw`) → ``(B, 3, P, P)`` float32."""
        if self._request is None:
            raise BackendError(f"{self._label}: backend is closed")
        x = check_batch(batch, self.in_channels, self.patch_size, self._label, raw=self._raw is not None)
        raw = x.dtype == np.uint16
        fixed = self._fixed
        if fixed is not None and fixed[0] == len(x) and fixed[1] == raw:
            parts = fixed[2]
            for request, part in zip(parts, np.split(x, len(parts)), strict=True):
                request.start_async({0: part})
            for request in parts:
                request.wait()
            return np.concatenate([request.get_output_tensor(0).data for request in parts])
        request = self._raw if raw else self._request
        request.infer({0: x})
        return np.array(request.get_output_tensor(0).data, dtype=np.float32, copy=True)

    def close(self) -> None:
        self._request = None
        self._raw = None
        self._fixed = None
        self._compiled = None
