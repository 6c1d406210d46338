"""The model the daemon runs: a signed bundle (file or install root) or a bare ONNX, on a backend.

:func:`open_model` returns a :class:`LoadedModel`: the :class:`ModelSpec` the rest of the pipeline
needs (recipe, channels, patch size, batch profile), the primary backend, and a factory for the
fallback backend used when the primary's output fails its check (fp32 ONNX Runtime on the CPU, or
the install root's previous bundle).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from edge.backends import Backend
from edge.config import ModelConfig
from edge.errors import BackendUnavailableError, ConfigError
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

    def close(self) -> None:
        self.backend.close()
        for style in self.styles.values():
            style.close()


def _ort(model: Path | bytes, cfg: ModelConfig, cuda: bool, label: str) -> Backend:
    from edge.backends.onnxruntime import OnnxRuntimeBackend

    providers = ("CUDAExecutionProvider", "CPUExecutionProvider") if cuda else ("CPUExecutionProvider",)
    return OnnxRuntimeBackend(model, providers=providers, threads=cfg.threads, label=label)


def _want_cuda(cfg: ModelConfig) -> bool:
    if cfg.backend == "onnxruntime-cuda":
        return True
    if cfg.backend == "tensorrt":
        raise BackendUnavailableError("model.backend = 'tensorrt' needs an engine built on the device "
                                      "(`stainless-export engine BUNDLE`); use 'auto' or 'onnxruntime' here")
    if cfg.backend == "auto":
        import onnxruntime as ort

        return "CUDAExecutionProvider" in ort.get_available_providers()
    return False


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
    backend = _ort(path, cfg, _want_cuda(cfg), str(path))
    in_ch = int(getattr(backend, "in_channels", len(recipe) * len(geometry.channels)))
    patch = int(getattr(backend, "patch_size", cfg.patch_size))
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
    return LoadedModel(spec, backend, fallback)


def _open_bundle(cfg: ModelConfig, geometry: ArrayGeometry) -> LoadedModel:
    from edge import bundle as bundles

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
    recipe = resolve_recipe(manifest.recipe_id, geometry)
    if recipe.hash != manifest.recipe_hash:
        raise ConfigError(f"bundle {manifest.name} {manifest.version} was trained on recipe {manifest.recipe_id!r} "
                          f"hash {manifest.recipe_hash}; this LED array gives hash {recipe.hash}")
    precision = cfg.precision if any(m.precision == cfg.precision for m in manifest.models) else "fp32"
    model_file = manifest.model(precision).file
    backend = _ort(read(model_file), cfg, _want_cuda(cfg), f"{manifest.name}:{model_file}")
    sizes = tuple(sorted({manifest.batch_min, manifest.batch_opt, manifest.batch_max}))
    spec = ModelSpec(manifest.name, manifest.version, recipe, manifest.patch_size, manifest.in_channels, sizes,
                     str(path))
    fallback: Callable[[], Backend] | None = None
    if cfg.fallback == "fp32" and (precision != "fp32" or "CUDA" in str(backend.providers_loaded[:1])):
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
    model = LoadedModel(spec, backend, fallback)
    try:  # styles are small RGB → RGB models: ONNX Runtime on the CPU beside any main backend
        for s in manifest.styles:
            if "*" in cfg.styles or s.name in cfg.styles:
                model.styles[s.name] = _ort(read(s.file), cfg, False, f"{manifest.name}:{s.file}")
    except BaseException:
        model.close()
        raise
    return model
