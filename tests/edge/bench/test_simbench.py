"""The virtual bench's truth: which true white cell each detection is, and how many are present."""

from __future__ import annotations

import math
from types import SimpleNamespace
from typing import Any

from edge.bench.simbench import StainedTruth, true_white_cells
from sim.scan import ScanConfig


def _job(x: float, y: float) -> Any:
    return SimpleNamespace(detection=SimpleNamespace(center_px=(x, y)), payloads={}, context={})


def test_a_cell_cut_by_the_border_is_typed_but_only_cells_on_the_field_count_as_present() -> None:
    truth = StainedTruth(ScanConfig(recipe="brightfield", fields=1, seed=0, field_size_px=(128, 128),
                                    smear={"wbc_per_mm2": 3000.0}))
    cells = true_white_cells(truth.sim, 0)
    inside = [c for c in cells if c["inside"]]
    cut = [c for c in cells if not c["inside"] and 128 <= c["center_px"][0] < 140 and 0 < c["center_px"][1] < 128]
    assert len(inside) >= 2 and len(cut) == 1  # a white cell centred just beyond the right edge
    cy, blank = cut[0]["center_px"][1], (64.0, 64.0)
    assert min(math.dist(blank, c["center_px"]) for c in cells) > 30  # nothing there
    jobs = [_job(*inside[0]["center_px"]), _job(126.0, cy), _job(*blank)]
    result = SimpleNamespace(stack=SimpleNamespace(request=SimpleNamespace(field_id=0)), jobs=jobs, context={})
    truth.annotate(result, 64, "reflect")
    assert [j.context["truth_type"] for j in jobs] == [inside[0]["type"], cut[0]["type"], None]
    assert result.context == {"truth_cells": len(inside), "truth_found": 1}
    assert all(j.payloads["truth"].shape == (64, 64, 3) for j in jobs)


def test_calibrated_thresholds_sit_between_scores_so_rounding_flags_no_good_cell() -> None:
    """The best split of these scores passes the good cell at 0.180651 and flags every removal; a threshold
    on that score, rounded to the config's 4 decimals (0.1807), would flag the good cell too."""
    from edge.bench.simbench import _thresholds

    good = [(0.180651, 0.01), (0.25, 0.02), (0.30, 0.03)]
    bad = [(0.15, 0.05), (0.16, 0.06), (0.17, 0.07)]
    res = _thresholds(good, bad)
    assert res["ssim"]["tpr"] == 1.0 and res["ssim"]["fpr"] == 0.0
    assert 0.17 < res["config"]["ssim_min"] < 0.180651
    assert res["combined"] == {"tpr": 1.0, "fpr": 0.0}
