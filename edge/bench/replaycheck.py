"""What QC and the white-cell detector say about the fields of a raw scan, replayed through
``replay://`` (e.g. a real LED-array stack written by ``stainless-sim import-real``).

Each field goes the daemon's way: the replay camera serves the planes of the scan's own recipe
(rebuilt from the sidecar's geometry and recipe id), :func:`edge.device.cell_jobs.energy_maps` and
:func:`edge.device.qc.run_qc` measure the stack and :func:`edge.device.detect.detect_cells` looks for white
cells. The detector's high-angle cut and colours are taken from ``detector``; on a rig whose
LEDs stop below ``min_angle_deg`` every darkfield LED counts as high-angle (as the daemon does).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from edge.device.cameras.replay import ReplayCamera
from edge.device.cell_jobs import energy_maps
from edge.device.config import DetectorConfig, QcConfig
from edge.device.detect import detect_cells
from edge.device.qc import run_qc
from edge.device.stack import FieldRequest, Stack, plane_layout
from firmware_bridge.geometry import ArrayGeometry
from firmware_bridge.recipes import resolve_recipe


def check_scan(scan_dir: str | Path, qc: QcConfig | None = None, detector: DetectorConfig | None = None
               ) -> dict[str, Any]:
    """QC metrics and flags and the detections of every field of ``scan_dir`` (JSON-ready)."""
    qc_cfg, det_cfg = qc or QcConfig(), detector or DetectorConfig()
    cam = ReplayCamera(scan_dir)
    try:
        fields = []
        for index in range(len(cam.fields)):
            request = FieldRequest("replay", index, (0.0, 0.0))
            cam.move_to(request)
            meta = cam.meta
            geometry = ArrayGeometry.from_dict(meta["geometry"])
            recipe = resolve_recipe(meta["recipe"]["id"], geometry)
            planes = plane_layout(recipe, cam.calibration(recipe.id))
            pixels = cam.collect_all(planes)
            stack = Stack(request, pixels, planes, cam.colours, cam.pixel_um, cam.black_level, cam.max_adu, 0.0, 0.0)
            cfg = dataclasses.replace(det_cfg, colours=tuple(c for c in det_cfg.colours if c in cam.colours)
                                      or cam.colours)
            high, total = energy_maps(stack, cfg)
            report = run_qc(stack, total, qc_cfg)
            found = detect_cells(high, total, stack.pixel_um, cfg)
            fields.append({"field": index, "planes": len(planes), "qc_flags": list(report.flags),
                           "qc_metrics": {k: round(v, 4) for k, v in report.metrics.items()},
                           "rejected": report.rejected, "detections": len(found),
                           "detections_px": [[round(d.center_px[0], 1), round(d.center_px[1], 1)] for d in found]})
    finally:
        cam.close()
    return {"scan": str(scan_dir), "fields": fields, "qc": dataclasses.asdict(qc_cfg),
            "detector": dataclasses.asdict(det_cfg)}
