"""The daemon's whole-field stain (``[field_stain] enabled``): the model tiled over each accepted field.

The field runs on its own ONNX Runtime session of the model's fp32 ONNX with the spatial axes
freed (:func:`edge.device.onnxshape.free_spatial_dims`), so tiles can be as large as ``max_tile_px`` and
the halo method costs little over one untiled pass. The halo is the model's receptive-field
radius measured with that session at start (:func:`edge.device.tiling.measure_halo`) unless
``halo_px`` sets it. Inputs are normalised exactly like the cell crops, window by window.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from edge.device.backends import Backend
from edge.device.config import FieldStainConfig, ModelConfig
from edge.device.crops import Normalisation, normalise
from edge.device.errors import BackendError, EdgeError
from edge.device.inference import check_output
from edge.device.onnxshape import free_spatial_dims
from edge.device.publisher import rgb8_hwc
from edge.device.tiling import TilePlan, TilingError, halo_tile, measure_halo, plan_tiles, stain_field

log = logging.getLogger(__name__)


def model_bytes(cfg: ModelConfig) -> bytes:
    """The fp32 ONNX of the configured model (a bundle file, an install root or a bare ONNX)."""
    from edge.device import bundle as bundles

    if cfg.onnx:
        return Path(cfg.onnx).read_bytes()
    path = Path(cfg.bundle)
    if path.is_dir():
        return bundles.load_installed(path).model_path("fp32").read_bytes()
    key = Path(cfg.public_key) if cfg.public_key else None
    report = bundles.verify_bundle(path, key, run_self_test=False)
    report.raise_for_failure()
    if report.manifest is None:
        raise BackendError(f"{path}: verified bundle without a manifest")
    return bundles.read_members(path)[report.manifest.model("fp32").file]


def probe_halo(backend: Backend, channels: int, max_tile: int) -> int:
    """:func:`edge.device.tiling.measure_halo` on growing probes (96, 192, ... px) until the field fits in one."""
    size = 96
    while True:
        try:
            return measure_halo(backend.infer, channels, size, probes=1)
        except TilingError:
            if size >= max_tile:
                raise
            size = min(2 * size, max_tile)


class FieldStainer:
    """Stains whole fields ``(N, C, H, W)`` raw ADU into ``(H, W, 3)`` uint8 (the wire's layout)."""

    def __init__(self, cfg: FieldStainConfig, backend: Backend, channels: int, norm: Normalisation,
                 output_range: tuple[float, float]) -> None:
        self.cfg = cfg
        self.backend = backend
        self.norm = norm
        self.range = output_range
        self.fixed_tile = int(getattr(backend, "patch_size", 0))
        probe = self.fixed_tile or cfg.max_tile_px
        self.halo = cfg.halo_px or probe_halo(backend, channels, probe)
        self._plans: dict[tuple[int, int], TilePlan] = {}
        log.info("whole-field stain: %s tiles of up to %d px, halo %d px", cfg.method, probe, self.halo)

    def plan(self, shape: tuple[int, int]) -> TilePlan:
        if shape not in self._plans:
            if self.fixed_tile:
                tile = (self.fixed_tile, self.fixed_tile)
            elif self.cfg.method == "halo":
                tile = (halo_tile(shape[0], self.halo, self.cfg.max_tile_px),
                        halo_tile(shape[1], self.halo, self.cfg.max_tile_px))
            else:
                tile = (min(shape[0], self.cfg.max_tile_px), min(shape[1], self.cfg.max_tile_px))
            self._plans[shape] = plan_tiles(shape, tile, self.cfg.method, self.halo)
        return self._plans[shape]

    def stain(self, pixels: NDArray[np.uint16]) -> tuple[NDArray[np.uint8], dict[str, Any]]:
        """The stained field and its header entry; raises :class:`EdgeError` when it cannot be made."""
        t0 = time.perf_counter()
        plan = self.plan((int(pixels.shape[-2]), int(pixels.shape[-1])))
        out = stain_field(pixels, self.backend.infer, plan, lambda w: normalise(w, self.norm), self.cfg.batch)
        problem = check_output(out, *self.range)
        if problem is not None:
            raise TilingError(f"whole-field stain rejected: {problem}")
        info = {"method": plan.method, "tile": list(plan.tile), "tiles": plan.n_tiles, "halo_px": self.halo,
                "compute_ratio": round(plan.compute_ratio, 4), "ms": round((time.perf_counter() - t0) * 1e3, 1)}
        return rgb8_hwc(out), info

    def close(self) -> None:
        self.backend.close()


def open_field_stainer(cfg: FieldStainConfig, model: ModelConfig, channels: int, norm: Normalisation) -> FieldStainer:
    """A :class:`FieldStainer` on its own ONNX Runtime CPU session of the model (spatial axes freed)."""
    from edge.device.backends.onnxruntime import OnnxRuntimeBackend

    try:
        backend = OnnxRuntimeBackend(free_spatial_dims(model_bytes(model)), threads=model.threads,
                                     label="whole-field model")
    except (OSError, EdgeError) as exc:
        raise BackendError(f"[field_stain] cannot open the model for whole fields: {exc}") from exc
    try:
        return FieldStainer(cfg, backend, channels, norm, (model.output_min, model.output_max))
    except BaseException:
        backend.close()
        raise


__all__ = ["FieldStainer", "model_bytes", "open_field_stainer", "probe_halo"]
