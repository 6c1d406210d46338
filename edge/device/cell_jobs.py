"""Per-field processing between capture and inference (pure apart from the time stamps).

``process_stack`` runs QC and detection on one stack and turns every detection into a
:class:`CellJob`: the raw crop in the recipe's channel order (normalised by :func:`fill_input`
straight into the batch buffer when the job is queued, or copied there as camera counts for a backend
that normalises them itself), the unstained
brightfield patch (and optionally one darkfield patch) for the wire, the scattering patch for the
fidelity score and the flags.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from numpy.typing import NDArray

from core.config import ConfigError
from edge.device.config import CropConfig, DetectorConfig, QcConfig
from edge.device.crops import Normalisation, crop, normalise, percentile, to_rgb8_hwc
from edge.device.detect import Detection, darkfield_energies, detect_cells
from edge.device.nvtx import nvtx_range
from edge.device.qc import QcReport, run_qc
from edge.device.stack import Stack
from firmware_bridge.recipes import StackRecipe


@dataclass
class FieldResult:
    """What processing found in one stack: QC, detections and the jobs for the batcher."""

    stack: Stack
    qc: QcReport
    detections: list[Detection]
    jobs: list[CellJob]
    t_processed: float
    timings_ms: dict[str, float] = field(default_factory=dict)
    context: dict[str, Any] = field(default_factory=dict)  # extra field-header keys (virtual bench truth)


@dataclass
class CellJob:
    """One cell on its way to the model. ``raw`` is its ``(I, C, P, P)`` crop in camera counts (a view of
    the stack where no padding was needed); the model input, ``normalise(raw)`` ``(I·C, P, P)`` float32
    in [0, 1], is written straight into the batch buffer by :func:`fill_input`.

    ``payloads`` are extra ``(P, P, 3)`` uint8 images published with the cell (``darkfield``,
    ``truth``); ``context`` extra cell-header keys.
    """

    key: tuple[str, int, int]  # slide, field, scan
    index: int
    detection: Detection
    raw: NDArray[np.uint16]
    unstained: NDArray[np.uint8] | None  # (P, P, 3)
    scatter: NDArray[np.float32]  # (P, P)
    flags: tuple[str, ...]
    t_queued: float = 0.0
    context: dict[str, Any] = field(default_factory=dict)
    payloads: dict[str, NDArray[np.uint8]] = field(default_factory=dict)


def check_darkfield_channel(recipe: StackRecipe, name: str) -> None:
    """Raise :class:`ConfigError` unless ``name`` is empty or a darkfield channel of ``recipe``."""
    if not name:
        return
    g = recipe.geometry
    valid = [c.name for c in recipe.channels if c.led is not None and not g.is_brightfield(c.led)]
    if name not in valid:
        raise ConfigError(f"[crops] send_darkfield: {name!r} is not a darkfield channel of recipe {recipe.id!r}; "
                          f"valid: {', '.join(valid[:12])}{', ...' if len(valid) > 12 else ''}")


def energy_maps(stack: Stack, config: DetectorConfig) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """(high-angle energy, total darkfield energy) ``(H, W)`` in the detector's colours."""
    colours = [stack.colours.index(c) for c in config.colours if c in stack.colours] or list(range(len(stack.colours)))
    exposure = [p.exposure.effective_ms for p in stack.planes]
    df = stack.plane_indices(darkfield=True, exposure_class=None)
    df = [i for i in df if stack.planes[i].exposure_class != "high"] or df
    if not df:  # a brightfield-only recipe: no scattering energy, nothing to detect
        zeros = np.zeros(stack.shape, np.float32)
        return zeros, zeros
    high = [i for i in df if stack.planes[i].angle_deg > config.min_angle_deg] or df
    return darkfield_energies(stack.pixels, colours, high, df, exposure, stack.black_level)


def process_stack(stack: Stack, qc_cfg: QcConfig, det_cfg: DetectorConfig, crop_cfg: CropConfig,
                  patch: int) -> FieldResult:
    c0, t0 = time.thread_time(), time.perf_counter()
    with nvtx_range("process/qc"):  # NVTX ranges for Nsight Systems when `nvtx` is installed
        high, total = energy_maps(stack, det_cfg)
        qc = run_qc(stack, total, qc_cfg)
    c1, t1 = time.thread_time(), time.perf_counter()
    with nvtx_range("process/detect"):
        detections = [] if qc.rejected else detect_cells(high, total, stack.pixel_um, det_cfg)
    c2, t2 = time.thread_time(), time.perf_counter()
    with nvtx_range("process/crops"):
        jobs = make_jobs(stack, detections, qc, crop_cfg, patch, high)
    c3, t3 = time.thread_time(), time.perf_counter()
    # wall time per part, and this thread's CPU time per part and for all (wall minus time lost to other threads)
    timings = {"qc_ms": (t1 - t0) * 1e3, "detect_ms": (t2 - t1) * 1e3, "crop_ms": (t3 - t2) * 1e3,
               "qc_cpu_ms": (c1 - c0) * 1e3, "detect_cpu_ms": (c2 - c1) * 1e3, "crop_cpu_ms": (c3 - c2) * 1e3,
               "process_cpu_ms": (c3 - c0) * 1e3}
    return FieldResult(stack, qc, detections, jobs, time.time(), timings)


def make_jobs(stack: Stack, detections: list[Detection], qc: QcReport, crop_cfg: CropConfig, patch: int,
              scatter_map: NDArray[np.float32]) -> list[CellJob]:
    if not detections:  # an empty or rejected field: no white level to find
        return []
    req = stack.request
    bf_i = stack.brightfield_index()
    white = percentile(stack.pixels[bf_i], 99.5)
    df_i = [p.name for p in stack.planes].index(crop_cfg.send_darkfield) if crop_cfg.send_darkfield else None
    df_white = percentile(stack.pixels[df_i], 99.5) if df_i is not None else 0.0
    jobs = []
    for k, det in enumerate(detections):
        raw, border = crop(stack.pixels, det.center_px, patch, crop_cfg.border, stack.black_level, view=True)
        scatter, _ = crop(scatter_map, det.center_px, patch, crop_cfg.border, 0.0)
        flags = (*qc.flags, "border") if border else qc.flags
        unstained = to_rgb8_hwc(raw[bf_i], stack.black_level, white) if crop_cfg.send_unstained else None
        job = CellJob((req.slide_id, req.field_id, req.scan_id), k, det, raw, unstained,
                      scatter.astype(np.float32), flags)
        if df_i is not None:
            job.payloads["darkfield"] = to_rgb8_hwc(raw[df_i], stack.black_level, df_white)
        jobs.append(job)
    return jobs


def fill_input(job: CellJob, norm: Normalisation, out: NDArray[Any]) -> None:
    """Write ``job``'s model input into ``out`` ``(I·C, P, P)``, a row of the batch buffer
    (:meth:`edge.device.batching.DynamicBatcher.put`'s ``fill``): ``normalise(job.raw, norm)`` into a
    float32 row; into a uint16 row (a backend that normalises itself, :class:`edge.device.backends.TakesRaw`)
    the camera counts as they are, a copy of the crop."""
    if out.dtype == np.uint16:
        np.copyto(out.reshape(job.raw.shape), job.raw)
    else:
        normalise(job.raw, norm, out)


def release_pixels(result: FieldResult) -> None:
    """Let the field's stack pixels go once every cell's input is in its batch buffer.

    A job's ``raw`` is a view of the stack and ``result.stack`` the stack itself, so until its last cell
    is published each field in flight kept its whole stack alive (``(N, C, H, W)`` uint16: 17 MB for a
    256² thesis-43 field) — with the batcher's queue full, one stack per ~4 queued cells, over 900 MB on
    the bench with fresh stacks. After this the stack keeps its context (request, planes, times) and
    zero planes; ``raw`` has zero planes too. Nothing downstream of the batcher reads pixels (headers,
    fidelity and payloads use the metadata, ``scatter`` and the patches made by :func:`make_jobs`);
    whole-field staining does, so the daemon does not call this when it is on.
    """
    result.stack = replace(result.stack, pixels=_no_planes(result.stack.pixels))
    for job in result.jobs:
        job.raw = _no_planes(job.raw)


def _no_planes(a: NDArray[Any]) -> NDArray[Any]:
    """A new, empty ``(0, *a.shape[1:])`` array of ``a``'s dtype (not a view: a view keeps ``a``'s memory)."""
    return np.empty((0, *a.shape[1:]), a.dtype)
