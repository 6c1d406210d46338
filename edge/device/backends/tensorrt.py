"""TensorRT engines: plan (pure), build (thin) and run (thin) — for Jetson and RTX devices.

TensorRT and pycuda are imported inside the functions that need them, so importing this module never
fails on a machine without them. What can be decided without TensorRT is decided by pure functions
that the tests cover:

* :func:`plan_engine` — which ONNX file and which build path for a TensorRT version: 10.x builds
  fp16 from the fp32 ONNX with ``BuilderFlag.FP16`` and pins the overflow-prone layers (the
  manifest's ``precision.fp32_nodes``) to fp32; ≥ 11 has no precision flags and builds a strongly
  typed network from the bundle's fp16 ONNX (or the QDQ ONNX for int8).
* :func:`profile_sizes` / :func:`plan_batches` — one static optimisation profile (and one execution
  context) per batch size; a batch of ``n`` cells is split into chunks of at most the largest size
  and each chunk is zero-padded up to the smallest profile size that holds it.
* :func:`engine_cache_key` — sha256(ONNX) + precision + profile + GPU name + compute capability +
  TensorRT version; engines are written to a temporary file and renamed (:func:`atomic_write`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from edge.device.backends.base import check_batch
from edge.device.errors import BackendError, BackendUnavailableError, SelfTestError
from edge.device.manifest import GoldenResult, Manifest, compare_outputs

log = logging.getLogger(__name__)

MIN_TENSORRT = (10, 0)
NOT_INSTALLED = ("TensorRT is not installed (import tensorrt failed: {exc}); engines are built on the device: "
                 "install stainless[trt] on a Jetson / RTX machine with the CUDA driver, or use the ONNX Runtime "
                 "backend")


# --- pure planning -------------------------------------------------------------------------------

def parse_version(text: str) -> tuple[int, ...]:
    """``"10.3.0.26"`` → ``(10, 3, 0, 26)``; ignores suffixes such as ``"+cuda12"``."""
    nums = re.findall(r"\d+", text.split("+")[0])
    if not nums:
        raise BackendError(f"cannot read a TensorRT version from {text!r}")
    return tuple(int(n) for n in nums)


@dataclass(frozen=True)
class EnginePlan:
    """How to build an engine for one precision with one TensorRT version."""

    precision: str
    onnx_file: str  # member of the bundle to parse
    strongly_typed: bool  # create the network with NetworkDefinitionCreationFlag.STRONGLY_TYPED
    builder_flags: tuple[str, ...]  # BuilderFlag names to set (weakly typed builds only)
    fp32_layers: tuple[str, ...]  # layer names (ONNX node names) pinned to fp32 (weakly typed fp16 only)
    sizes: tuple[int, ...]  # one static optimisation profile per batch size


def profile_sizes(batch_min: int, batch_opt: int, batch_max: int) -> tuple[int, ...]:
    """Batch sizes that get a profile: min, opt and max of the manifest's profile (deduplicated)."""
    if not 1 <= batch_min <= batch_opt <= batch_max:
        raise BackendError(f"batch profile min/opt/max {batch_min}/{batch_opt}/{batch_max}: expected "
                           "1 <= min <= opt <= max")
    return tuple(sorted({batch_min, batch_opt, batch_max}))


def plan_engine(manifest: Manifest, precision: str, trt_version: str, max_batch: int | None = None) -> EnginePlan:
    """Choose the ONNX file and build path for ``precision`` on TensorRT ``trt_version``."""
    version = parse_version(trt_version)
    needed = parse_version(manifest.min_tensorrt)
    if version < max(MIN_TENSORRT, needed):
        raise BackendUnavailableError(f"TensorRT {trt_version} is too old: this bundle needs >= "
                                      f"{'.'.join(map(str, max(MIN_TENSORRT, needed)))}")
    hi = manifest.batch_max if max_batch is None else max_batch
    if hi < 1:
        raise BackendError(f"max batch {hi}: expected >= 1")
    sizes = profile_sizes(min(manifest.batch_min, hi), min(manifest.batch_opt, hi), hi)
    names = [m.precision for m in manifest.models]
    if precision not in ("fp32", "fp16", "int8"):
        raise BackendError(f"precision {precision!r}: expected fp32, fp16 or int8")
    int8_format = (manifest.doc.get("int8") or {}).get("format", "qdq")  # bundles before the record: QDQ
    if precision == "int8" and "int8" in names and int8_format != "qdq":
        raise BackendError(f"bundle {manifest.slug}'s int8 model is {int8_format} (ONNX Runtime CPU); TensorRT builds "
                           "int8 only from QDQ: export with --int8-format qdq, or use fp16")
    if version >= (11,):
        source = {"fp32": "fp32", "fp16": "fp16", "int8": "int8"}[precision]
        if source not in names:
            raise BackendError(f"TensorRT {trt_version} builds {precision} from a strongly typed {source} ONNX; "
                               f"bundle {manifest.slug} holds only {names}")
        return EnginePlan(precision, manifest.model(source).file, True, (), (), sizes)
    if precision == "int8":
        if "int8" not in names:
            raise BackendError(f"bundle {manifest.slug} has no int8 (QDQ) model; export it with --int8")
        return EnginePlan(precision, manifest.model("int8").file, False, ("FP16", "INT8"), (), sizes)
    if precision == "fp16":
        pinned = tuple(manifest.doc.get("precision", {}).get("fp32_nodes", []))
        return EnginePlan(precision, manifest.model("fp32").file, False, ("FP16", "OBEY_PRECISION_CONSTRAINTS"),
                          pinned, sizes)
    return EnginePlan(precision, manifest.model("fp32").file, False, (), (), sizes)


def pinned_layers(layer_names: Sequence[str], fp32_nodes: Sequence[str]) -> list[int]:
    """Indices of the network layers that came from ONNX nodes kept in fp32 (the parser names layers
    after their node, sometimes with a suffix such as ``_output`` or ``.1``)."""
    wanted = set(fp32_nodes)
    return [i for i, name in enumerate(layer_names)
            if name in wanted or any(name.startswith(n + s) for n in wanted for s in ("_", ".", ":"))]


@dataclass(frozen=True)
class Chunk:
    """Cells ``[start, stop)`` of a batch, run on profile ``profile`` padded to ``size``."""

    start: int
    stop: int
    profile: int
    size: int


def plan_batches(n: int, sizes: Sequence[int]) -> list[Chunk]:
    """Split ``n`` cells into chunks of at most ``max(sizes)``, each padded to the smallest size that holds it."""
    if n < 1:
        raise BackendError(f"batch of {n} cells: expected >= 1")
    ordered = sorted(sizes)
    chunks, start = [], 0
    while start < n:
        count = min(n - start, ordered[-1])
        index = next(i for i, s in enumerate(ordered) if s >= count)
        chunks.append(Chunk(start, start + count, index, ordered[index]))
        start += count
    return chunks


def fill_padded(dest: NDArray[np.float32], batch: NDArray[np.float32]) -> None:
    """``batch`` copied into the first rows of ``dest`` and the rest of ``dest`` zeroed: a partial batch
    padded to a profile size in the engine's (pinned) input buffer, with no temporary."""
    n = len(batch)
    if n > len(dest):
        raise ValueError(f"a batch of {n} does not fit an input buffer of {len(dest)} rows")
    dest[:n] = batch
    dest[n:] = 0.0


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.]+", "-", text).strip("-").lower()


def engine_cache_key(onnx_sha256: str, precision: str, sizes: Sequence[int], gpu_name: str,
                     compute_capability: tuple[int, int], trt_version: str) -> str:
    """Identity of an engine: it is only valid for this ONNX, precision, profile, GPU and TensorRT."""
    doc = {"onnx": onnx_sha256, "precision": precision, "profile": list(sizes), "gpu": gpu_name,
           "sm": list(compute_capability), "tensorrt": trt_version}
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:32]


def engine_file(cache_dir: Path, key: str, precision: str) -> Path:
    return Path(cache_dir) / f"{precision}-{key}.engine"


def timing_cache_file(cache_dir: Path, trt_version: str, gpu_name: str, compute_capability: tuple[int, int]) -> Path:
    """One persisted timing cache per TensorRT version and device."""
    sm = f"sm{compute_capability[0]}{compute_capability[1]}"
    return Path(cache_dir) / f"timing-trt{_slug(trt_version)}-{_slug(gpu_name)}-{sm}.cache"


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``path``, fsync, then rename over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# --- thin library calls (device only) ------------------------------------------------------------

def require_tensorrt() -> Any:
    """The ``tensorrt`` module, or :class:`BackendUnavailableError` saying how to get it."""
    try:
        import tensorrt
    except ImportError as exc:
        raise BackendUnavailableError(NOT_INSTALLED.format(exc=exc)) from exc
    return tensorrt


def require_pycuda() -> Any:
    """``pycuda.driver`` with a context on device 0 (``pycuda.autoinit``)."""
    try:
        import pycuda.autoinit  # noqa: F401  (creates the CUDA context)
        import pycuda.driver as cuda
    except ImportError as exc:
        raise BackendUnavailableError(f"pycuda is not installed ({exc}); install stainless[trt] on the device") from exc
    return cuda


def device_info() -> tuple[str, tuple[int, int]]:
    """GPU name and compute capability of CUDA device 0."""
    cuda = require_pycuda()
    dev = cuda.Device(0)
    major, minor = dev.compute_capability()
    return str(dev.name()), (int(major), int(minor))


def build_engine(onnx_path: Path, plan: EnginePlan, in_shape: tuple[int, int, int], input_name: str,
                 cache_dir: Path, onnx_sha256: str) -> Path:
    """Build (or reuse from ``cache_dir``) the engine of ``plan``; return the engine file."""
    trt = require_tensorrt()
    gpu, sm = device_info()
    key = engine_cache_key(onnx_sha256, plan.precision, plan.sizes, gpu, sm, trt.__version__)
    target = engine_file(cache_dir, key, plan.precision)
    if target.exists():
        log.info("engine cache hit %s", target)
        return target
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED) if plan.strongly_typed else 0
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(Path(onnx_path).read_bytes()):
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        raise BackendError(f"TensorRT cannot parse {onnx_path}: {errors}")
    config = builder.create_builder_config()
    for flag in plan.builder_flags:
        config.set_flag(getattr(trt.BuilderFlag, flag))
    _pin_fp32(trt, network, plan.fp32_layers)
    for size in plan.sizes:
        profile = builder.create_optimization_profile()
        shape = (size, *in_shape)
        profile.set_shape(input_name, shape, shape, shape)
        config.add_optimization_profile(profile)
    timing = timing_cache_file(cache_dir, trt.__version__, gpu, sm)
    cache = config.create_timing_cache(timing.read_bytes() if timing.exists() else b"")
    config.set_timing_cache(cache, ignore_mismatch=False)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise BackendError(f"TensorRT failed to build an engine from {onnx_path} (see the TensorRT log above)")
    atomic_write(timing, bytes(config.get_timing_cache().serialize()))
    atomic_write(target, bytes(serialized))
    log.info("built %s engine %s (profiles %s)", plan.precision, target, plan.sizes)
    return target


def _pin_fp32(trt: Any, network: Any, fp32_nodes: Sequence[str]) -> None:
    names = [network.get_layer(i).name for i in range(network.num_layers)]
    for i in pinned_layers(names, fp32_nodes):
        layer = network.get_layer(i)
        layer.precision = trt.float32
        for j in range(layer.num_outputs):
            layer.set_output_type(j, trt.float32)


class TensorRTBackend:
    """A deserialised engine with one execution context per profile size, page-locked buffers and a stream."""

    def __init__(self, engine: Path, sizes: Sequence[int], input_name: str = "stack",
                 output_name: str = "stained") -> None:
        trt, self._cuda = require_tensorrt(), require_pycuda()
        self.engine_path = Path(engine)
        self._runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        self._engine = self._runtime.deserialize_cuda_engine(Path(engine).read_bytes())
        if self._engine is None:
            raise BackendError(f"{engine} is not an engine for this TensorRT / GPU; rebuild it "
                               "(`stainless-export engine BUNDLE`)")
        self.sizes = tuple(sorted(sizes))
        if self._engine.num_optimization_profiles != len(self.sizes):
            raise BackendError(f"{engine} has {self._engine.num_optimization_profiles} profiles, expected "
                               f"{len(self.sizes)} for sizes {self.sizes}")
        self.input_name, self.output_name = input_name, output_name
        shape = tuple(self._engine.get_tensor_shape(input_name))
        self.in_channels, self.patch_size = int(shape[1]), int(shape[2])
        self._stream = self._cuda.Stream()
        self._slots = [self._slot(i, size) for i, size in enumerate(self.sizes)]

    def _slot(self, index: int, size: int) -> dict[str, Any]:
        cuda = self._cuda
        ctx = self._engine.create_execution_context()
        ctx.set_optimization_profile_async(index, self._stream.handle)
        ctx.set_input_shape(self.input_name, (size, self.in_channels, self.patch_size, self.patch_size))
        host_in = cuda.pagelocked_empty((size, self.in_channels, self.patch_size, self.patch_size), np.float32)
        host_out = cuda.pagelocked_empty((size, 3, self.patch_size, self.patch_size), np.float32)
        dev_in, dev_out = cuda.mem_alloc(host_in.nbytes), cuda.mem_alloc(host_out.nbytes)
        ctx.set_tensor_address(self.input_name, int(dev_in))
        ctx.set_tensor_address(self.output_name, int(dev_out))
        return {"ctx": ctx, "host_in": host_in, "host_out": host_out, "dev_in": dev_in, "dev_out": dev_out}

    #: Partial batches are padded to a profile size in the engine's input buffer
    #: (:func:`fill_padded`), so :class:`~edge.device.inference.ModelRunner` passes them as they are.
    pads_batches = True

    @property
    def name(self) -> str:
        return "tensorrt"

    @property
    def providers_loaded(self) -> tuple[str, ...]:
        return ("TensorRT",)

    def infer(self, batch: NDArray[np.float32]) -> NDArray[np.float32]:
        """``(B, I·C, P, P)`` float32 → ``(B, 3, P, P)`` float32, in chunks padded to profile sizes."""
        x = check_batch(batch, self.in_channels, self.patch_size, "tensorrt")
        out = np.empty((len(x), 3, self.patch_size, self.patch_size), np.float32)
        for chunk in plan_batches(len(x), self.sizes):
            slot = self._slots[chunk.profile]
            fill_padded(slot["host_in"], x[chunk.start:chunk.stop])
            self._cuda.memcpy_htod_async(slot["dev_in"], slot["host_in"], self._stream)
            if not slot["ctx"].execute_async_v3(self._stream.handle):
                raise BackendError("TensorRT execute_async_v3 failed (see the TensorRT log)")
            self._cuda.memcpy_dtoh_async(slot["host_out"], slot["dev_out"], self._stream)
            self._stream.synchronize()
            out[chunk.start:chunk.stop] = slot["host_out"][: chunk.stop - chunk.start]
        return out

    def close(self) -> None:
        for slot in self._slots:
            slot["dev_in"].free()
            slot["dev_out"].free()
        self._slots = []
        self._engine = None


def open_bundle_engine(manifest: Manifest, read: Callable[[str], bytes], precision: str, cache_dir: Path,
                       max_batch: int | None = None) -> tuple[TensorRTBackend, EnginePlan, GoldenResult]:
    """Build (or reuse from ``cache_dir``) the bundle's ``precision`` engine, open it and self-test it.

    ``read(name)`` returns a bundle member. The engine must reproduce the golden outputs within the
    tolerance of its precision; one that fails is closed and removed from the cache
    (:class:`~edge.device.errors.SelfTestError`), so it is never served.
    """
    from edge.device.selftest import load_npy

    trt = require_tensorrt()
    plan = plan_engine(manifest, precision, trt.__version__, max_batch)
    with tempfile.TemporaryDirectory(prefix="stainless-engine-") as tmp:
        onnx_path = Path(tmp) / plan.onnx_file
        onnx_path.write_bytes(read(plan.onnx_file))
        engine = build_engine(onnx_path, plan, (manifest.in_channels, manifest.patch_size, manifest.patch_size),
                              manifest.input_name, cache_dir, manifest.files[plan.onnx_file])
    backend = TensorRTBackend(engine, plan.sizes, manifest.input_name, manifest.output_name)
    try:
        pairs = [(load_npy(read(g.input), g.input), load_npy(read(g.output), g.output)) for g in manifest.golden]
        got = np.concatenate([backend.infer(x) for x, _ in pairs])
        names = [m.precision for m in manifest.models]
        tol = manifest.model(precision if precision in names else "fp16").tolerance
        result = compare_outputs(got, np.concatenate([y for _, y in pairs]), tol, precision)
        if not result.passed:
            engine.unlink(missing_ok=True)  # never leave an engine that failed its self-test in the cache
            raise SelfTestError(f"engine {engine.name} fails the golden self-test: {result.describe()}")
    except BaseException:
        backend.close()
        raise
    log.info("TensorRT %s engine %s passed the golden self-test", precision, engine.name)
    return backend, plan, result
