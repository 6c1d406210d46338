from __future__ import annotations

from edge.client import FieldSummary
from edge.client.gallery import stain_ssim
from edge.client.watch import WatchStats
from tests.edge.client.cells import cell


def test_stats_count_fields_and_ssim_by_type() -> None:
    stats = WatchStats()
    for i, kind in enumerate(["lymphocyte", "neutrophil", None]):
        stats.add(cell(i, kind=kind))
    stats.add(cell(3, truth=False))
    stats.add_field(FieldSummary({"cells": 4, "cells_suspect": 1, "truth_cells": 3, "truth_found": 2}))
    d = stats.to_dict()
    assert d["cells"] == 4 and d["cells_found"] == 4 and d["cells_suspect"] == 1
    assert d["cells_present"] == 3 and d["cells_present_found"] == 2
    s = d["ssim_stain_vs_truth"]
    assert s["n"] == 3 and s["mean"] == 1.0  # the truth equals the stain
    assert set(s["by_type"]) == {"lymphocyte", "neutrophil", "no true cell"}
    assert stain_ssim(cell(0, truth=False)) is None
