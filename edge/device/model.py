"""The model the daemon runs: a signed bundle (file or install root) or a bare ONNX, on a backend.

:func:`open_model` returns a :class:`LoadedModel`: the :class:`ModelSpec` the rest of the pipeline
needs (recipe, channels, patch size, batch profile), the primary backend, and a factory for the
fallback backend used when the primary's output fails its check (fp32 ONNX Runtime on the CPU, or
the install root's previous bundle).

The primary backend follows ``model.backend`` (:mod:`edge.device.backends.select`): ``auto`` tries TensorRT
(an engine built from the bundle, or reused from the engine cache, that passed its golden self-test),
then OpenVINO (Intel CPUs, or any CPU with native bf16 when bf16 is asked for and the bundle's gate
passed it; the fp32 ONNX, bf16 where asked, the CPU has it and the gate passed it; for int8 the bundle's
OpenVINO int8 IR when its gate passed it; golden self-test on open), then ONNX Runtime CUDA, then
ONNX Runtime CPU; the choice and why the others were passed over are logged and kept in
:attr:`LoadedModel.backend_reason` (the daemon's ``status``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from core.config import ConfigError
from edge.device.backends import Backend
from edge.device.backends.select import Selection, precision_note, probe_machine, select_backends
from edge.device.config import ModelConfig
from edge.device.errors import BackendError, BackendUnavailableError, SelfTestError
from edge.device.manifest import OPENVINO_INT8, Manifest
from firmware_bridge.geometry import ArrayGeometry
from firmware_bridge.recipes import StackRecipe, resolve_recipe

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelSpec:
    """What the pipeline needs to know about a model."""

    name: str
    version: str
    recipe: StackRecipe
    patch_size: int
    in_channels: int
    profile_sizes: tuple[int, ...] = ()
    source: str = ""


@dataclass
class LoadedModel:
    """``styles``: the bundle's stain styles (name → backend on the generator's RGB output)."""

    spec: ModelSpec
    backend: Backend
    fallback: Callable[[], Backend] | None = None
    notes: list[str] = field(default_factory=list)
    styles: dict[str, Backend] = field(default_factory=dict)
    #: Which backend runs and why (what came before it in ``model.backend = "auto"`` and why not).
    backend_reason: str = ""

    @property
    def batch_sizes(self) -> tuple[int, ...]:
        """Batch sizes the engine was built for (TensorRT); ``()`` for ONNX Runtime, which takes any batch."""
        return tuple(getattr(self.backend, "sizes", ()))

    def close(self) -> None:
        self.backend.close()
        for style in self.styles.values():
            style.close()


def _ort(model: Path | bytes, cfg: ModelConfig, cuda: bool, label: str, precision: str = "") -> Backend:
    """``precision``: the bundle member's (an int8 member keeps float32 I/O, so it cannot be read off the graph)."""
    from edge.device.backends.onnxruntime import OnnxRuntimeBackend

    providers = ("CUDAExecutionProvider", "CPUExecutionProvider") if cuda else ("CPUExecutionProvider",)
    return OnnxRuntimeBackend(model, providers=providers, threads=cfg.threads, label=label, precision=precision)


def _openvino(model: Path | bytes, cfg: ModelConfig, label: str, precision: str = "fp32",
              weights: bytes | None = None) -> Backend:
    from edge.device.backends.openvino import OpenVinoBackend

    return OpenVinoBackend(model, precision=precision, threads=cfg.threads, label=label, weights=weights)


def open_first(cfg: ModelConfig, selection: Selection, openers: dict[str, Callable[[], Backend]]) -> tuple[
        Backend, str]:
    """Open the first candidate that works; with ``auto`` a failing one (an engine failing its self-test,
    CUDA not loading) is logged and the next is tried. Returns the backend and the reason it runs."""
    failed: list[tuple[str, str]] = []
    for name in selection.candidates:
        try:
            backend = openers[name]()
        except (BackendError, SelfTestError) as exc:
            if cfg.backend != "auto":
                raise
            log.warning("model.backend = auto: %s is unusable (%s); trying the next backend", name, exc)
            failed.append((name, str(exc)))
            continue
        reason = selection.reason(name, tuple(failed))
        log.info("model.backend = %s: running on %s", cfg.backend, reason)
        return backend, reason
    raise BackendUnavailableError("no backend could be opened: " + "; ".join(f"{n}: {why}" for n, why in failed))


def open_model(cfg: ModelConfig, geometry: ArrayGeometry) -> LoadedModel:
    """Load the configured model; the recipe is resolved against the LED array's ``geometry``."""
    if cfg.onnx:
        return _open_onnx(cfg, geometry)
    return _open_bundle(cfg, geometry)


def _open_onnx(cfg: ModelConfig, geometry: ArrayGeometry) -> LoadedModel:
    path = Path(cfg.onnx)
    if not path.is_file():
        raise ConfigError(f"model.onnx = {path} does not exist")
    recipe = resolve_recipe(cfg.recipe, geometry)
    selection = select_backends(cfg.backend, probe_machine(), bundle=False)
    backend, reason = open_first(cfg, selection, {"openvino": lambda: _openvino(path, cfg, str(path)),
                                                  "onnxruntime-cuda": lambda: _ort(path, cfg, True, str(path)),
                                                  "onnxruntime-cpu": lambda: _ort(path, cfg, False, str(path))})
    in_ch = int(getattr(backend, "in_channels", len(recipe) * len(geometry.channels)))
    patch = int(getattr(backend, "patch_size", 0)) or cfg.patch_size  # 0: free spatial axes
    if in_ch != len(recipe) * len(geometry.channels):
        backend.close()
        raise ConfigError(f"{path} takes {in_ch} input channels; recipe {recipe.id!r} on {geometry.name} gives "
                          f"{len(recipe)} images × {len(geometry.channels)} colours = "
                          f"{len(recipe) * len(geometry.channels)}; set model.recipe to the model's recipe")
    spec = ModelSpec(cfg.name, cfg.version, recipe, patch, in_ch, (), str(path))
    fallback = None
    if cfg.fallback == "fp32" and "CUDA" in str(backend.providers_loaded[:1]):
        def fallback() -> Backend:
            return _ort(path, cfg, False, f"{path} (fp32 CPU fallback)")
    return LoadedModel(spec, backend, fallback, backend_reason=reason)


def _open_bundle(cfg: ModelConfig, geometry: ArrayGeometry) -> LoadedModel:
    from edge.device import bundle as bundles

    path = Path(cfg.bundle)
    key = Path(cfg.public_key) if cfg.public_key else None
    if path.is_dir():
        installed = bundles.load_installed(path)
        manifest = installed.manifest

        def read(name: str) -> bytes:
            return (installed.path / name).read_bytes()
    else:
        report = bundles.verify_bundle(path, key, run_self_test=False)
        report.raise_for_failure()
        assert report.manifest is not None  # a passed report holds its manifest
        manifest = report.manifest
        members = bundles.read_members(path)
        def read(name: str) -> bytes:
            return members[name]
    return _open_manifest(cfg, geometry, manifest, read, path)


def open_slot(cfg: ModelConfig, geometry: ArrayGeometry, slot: Path, root: Path) -> LoadedModel:
    """Load the installed bundle in ``slot`` (``ROOT/versions/NAME-VERSION``, hashes re-checked) as
    :func:`open_model` loads ``model.bundle``; engines are cached under ``root``. Used by ``flash``."""
    from edge.device import bundle as bundles
    from edge.device.manifest import MANIFEST_NAME, Manifest

    manifest = Manifest.from_dict(Manifest.parse_json((slot / MANIFEST_NAME).read_bytes()))
    bundles.check_hashes(manifest, {n: (slot / n).read_bytes() for n in manifest.files})

    def read(name: str) -> bytes:
        return (slot / name).read_bytes()
    return _open_manifest(cfg, geometry, manifest, read, root)


def _open_manifest(cfg: ModelConfig, geometry: ArrayGeometry, manifest: Manifest, read: Callable[[str], bytes],
                   path: Path) -> LoadedModel:
    from edge.device import bundle as bundles

    recipe = resolve_recipe(manifest.recipe_id, geometry)
    if recipe.hash != manifest.recipe_hash:
        raise ConfigError(f"bundle {manifest.name} {manifest.version} was trained on recipe {manifest.recipe_id!r} "
                          f"hash {manifest.recipe_hash}; this LED array gives hash {recipe.hash}")
    precision = cfg.precision if any(m.precision == cfg.precision for m in manifest.models) else "fp32"
    model_file = manifest.model(precision).file
    label = f"{manifest.name}:{model_file}"

    def engine() -> Backend:
        from edge.device.backends.tensorrt import open_bundle_engine

        cache = Path(cfg.engine_cache).expanduser() if cfg.engine_cache else (
            path / "engines" if path.is_dir() else Path.home() / ".cache" / "stainless" / "engines")
        return open_bundle_engine(manifest, read, cfg.precision, cache)[0]

    bf16 = cfg.precision == "bf16" and manifest.gate_passed("openvino-bf16")
    ov_int8 = manifest.openvino_int8 if cfg.precision == "int8" and manifest.gate_passed(OPENVINO_INT8) else None

    def openvino() -> Backend:
        from edge.device.selftest import openvino_self_test

        if cfg.precision == "bf16" and not bf16:
            log.warning("model.precision = bf16: bundle %s has no passed quality gate for openvino-bf16; running "
                        "OpenVINO in fp32 (re-export the bundle with this stainless to gate bf16)", manifest.slug)
        if ov_int8 is not None:
            backend = _openvino(read(ov_int8[0]), cfg, f"{manifest.name}:{ov_int8[0]} (openvino)", "int8",
                                read(ov_int8[1]))
        else:
            backend = _openvino(read(manifest.model("fp32").file), cfg, f"{label} (openvino)",
                                "bf16" if bf16 else "fp32")
        try:
            openvino_self_test(manifest, read, backend)
        except BaseException:
            backend.close()
            raise
        return backend

    selection = select_backends(cfg.backend, probe_machine(), bundle=True, bf16=bf16, member=precision,
                                openvino_int8=ov_int8 is not None)
    backend, reason = open_first(cfg, selection, {
        "tensorrt": engine, "openvino": openvino,
        "onnxruntime-cuda": lambda: _ort(read(model_file), cfg, True, label, precision),
        "onnxruntime-cpu": lambda: _ort(read(model_file), cfg, False, label, precision)})
    gated = OPENVINO_INT8 if cfg.precision == "int8" else "openvino-bf16"
    if note := precision_note(cfg.precision, backend.name, bf16, manifest.gate_summary(gated)):
        reason = f"{reason}; {note}"
    sizes = tuple(sorted({manifest.batch_min, manifest.batch_opt, manifest.batch_max}))
    spec = ModelSpec(manifest.name, manifest.version, recipe, manifest.patch_size, manifest.in_channels, sizes,
                     str(path))
    fallback: Callable[[], Backend] | None = None
    if cfg.fallback == "fp32" and (precision != "fp32" or backend.providers_loaded[:1] != ("CPUExecutionProvider",)):
        fp32 = manifest.model("fp32").file

        def fallback() -> Backend:
            return _ort(read(fp32), cfg, False, f"{manifest.name}:{fp32} (fallback)")
    elif cfg.fallback == "previous" and path.is_dir():
        def fallback() -> Backend:
            prev = bundles.load_installed(path, "previous")
            return _ort(prev.model_path("fp32"), cfg, False, f"{prev.manifest.name} {prev.manifest.version}")
    unknown = sorted(set(cfg.styles) - {"*", *(s.name for s in manifest.styles)})
    if unknown:
        backend.close()
        raise ConfigError(f"model.styles: {unknown} not in bundle {manifest.name} {manifest.version}; it has "
                          f"{[s.name for s in manifest.styles] or 'no styles'}")
    model = LoadedModel(spec, backend, fallback, backend_reason=reason)
    try:  # styles are small RGB → RGB models: ONNX Runtime on the CPU beside any main backend
        for s in manifest.styles:
            if "*" in cfg.styles or s.name in cfg.styles:
                model.styles[s.name] = _ort(read(s.file), cfg, False, f"{manifest.name}:{s.file}")
    except BaseException:
        model.close()
        raise
    return model
