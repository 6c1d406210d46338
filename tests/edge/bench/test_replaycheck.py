from __future__ import annotations

from pathlib import Path

import numpy as np

from edge.bench.replaycheck import check_scan
from sim.realimport import import_real_stack
from sim.realstack import write_real_stack


def _scan(out: Path, scatterer: bool) -> Path:
    rng = np.random.default_rng(1)
    images = 0.01 * rng.random((225, 24, 24)).astype(np.float32)
    images[:9] += 1.0  # centre and ring 1 of the spiral are brightfield
    if scatterer:
        images[9:, 10:14, 10:14] += 0.5  # one object lit by every darkfield LED
    out.mkdir()
    import_real_stack(write_real_stack(out / "s.mat", images, 630.0), out / "scan")
    return out / "scan"


def test_check_scan_runs_qc_and_the_detector_on_a_replayed_real_format_field(tmp_path: Path) -> None:
    blank = check_scan(_scan(tmp_path / "blank", False))["fields"]
    lit = check_scan(_scan(tmp_path / "lit", True))["fields"]
    assert len(blank) == len(lit) == 1
    assert lit[0]["planes"] == 1 + 21 + 2 * 204  # brightfield pattern, BF LEDs, DF LEDs low + high
    assert {"saturation", "focus", "misalignment_um", "darkfield_contrast"} <= set(lit[0]["qc_metrics"])
    assert lit[0]["qc_metrics"]["darkfield_contrast"] > 2 * blank[0]["qc_metrics"]["darkfield_contrast"]
    assert "empty" not in lit[0]["qc_flags"]
    assert lit[0]["detections"] == len(lit[0]["detections_px"])
