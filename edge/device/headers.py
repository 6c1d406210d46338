"""The msgpack headers the daemon publishes, built by pure functions (the wire format: :mod:`edge.device.wire`).

Each function takes what the pipeline knows about a field or a cell and returns the header dict;
nothing here touches a socket, a clock or a lock, so every key can be checked in a test.
"""

from __future__ import annotations

from typing import Any

from edge.device.cell_jobs import CellJob, FieldResult
from edge.device.fidelity import Fidelity
from edge.device.stack import FieldRequest, Stack


def field_ids(req: FieldRequest) -> dict[str, Any]:
    """The keys that name a field in every header: slide, field, scan and stage position (µm)."""
    return {"slide_id": req.slide_id, "field_id": req.field_id, "scan_id": req.scan_id,
            "stage_um": [float(req.stage_um[0]), float(req.stage_um[1])]}


def cell_id(req: FieldRequest, index: int) -> str:
    """``slide/scan/field/index``: unique per daemon run."""
    return f"{req.slide_id}/{req.scan_id}/{req.field_id}/{index}"


def event_header(name: str, message: str, req: FieldRequest | None = None) -> dict[str, Any]:
    return {"event": name, "message": message, **(field_ids(req) if req else {})}


def failed_field_header(req: FieldRequest, error: str) -> dict[str, Any]:
    """A field that could not be captured: no cells, the acquisition error."""
    return {**field_ids(req), "status": "failed", "cells": 0, "error": error}


def cell_header(job: CellJob, result: FieldResult, model: dict[str, Any], recipe: dict[str, Any], patch_size: int,
                fid: Fidelity | None, t_inf0: float, t_inf1: float) -> dict[str, Any]:
    """The header of one stained cell; ``model`` and ``recipe`` as :func:`model_info` and the bundle give them."""
    stack: Stack = result.stack
    d = job.detection
    req = stack.request
    cx, cy = d.center_px
    suspect = bool(fid and fid.suspect)
    return {
        **field_ids(req), "cell_index": job.index, "cell_id": cell_id(req, job.index),
        "field_cells": len(result.jobs), "center_px": [cx, cy], "box_px": list(d.box_px),
        "position_um": [req.stage_um[0] + (cx + 0.5) * stack.pixel_um,
                        req.stage_um[1] + (cy + 0.5) * stack.pixel_um],
        "pixel_um": stack.pixel_um, "diameter_um": d.diameter_um, "score": d.score,
        "model": model, "recipe": recipe, "patch": {"size": patch_size},
        "qc_flags": list(result.qc.flags), "flags": list(job.flags) + (["suspect"] if suspect else []),
        "fidelity": None if fid is None else {"ssim": fid.ssim, "chi2": fid.chi2, "suspect": fid.suspect},
        "t": {"capture_start": stack.t_capture_start, "capture_end": stack.t_capture_end,
              "processed": result.t_processed, "queued": job.t_queued, "inference_start": t_inf0,
              "inference_done": t_inf1},
        "latency_ms": {"capture": (stack.t_capture_end - stack.t_capture_start) * 1e3,
                       "process": (result.t_processed - stack.t_capture_end) * 1e3,
                       "queue": (t_inf0 - job.t_queued) * 1e3, "inference": (t_inf1 - t_inf0) * 1e3,
                       "capture_end_to_inference_done": (t_inf1 - stack.t_capture_end) * 1e3},
        **job.context,
    }


def field_header(result: FieldResult, status: str, sent: int, lost: int, suspect: int,
                 t_done: float) -> dict[str, Any]:
    """The summary of one processed field (``status``: ``ok`` or ``rejected``), sent after its last cell."""
    stack = result.stack
    return {
        **field_ids(stack.request), "status": status, "cells": len(result.jobs), "cells_sent": sent,
        "cells_not_sent": lost, "cells_suspect": suspect,
        "cell_ids": [cell_id(stack.request, j.index) for j in result.jobs],
        "qc_flags": list(result.qc.flags), "qc": result.qc.metrics, "attempts": stack.attempts,
        "exposure": {"calibration_id": stack.calibration_id,
                     "exposure_ms": [p.exposure.exposure_ms for p in stack.planes],
                     "gain": [p.exposure.gain for p in stack.planes]},
        "t": {"capture_start": stack.t_capture_start, "capture_end": stack.t_capture_end,
              "processed": result.t_processed, "done": t_done},
        "timings_ms": result.timings_ms, **result.context}
