"""``bench/raw_input.py``: the backend alone with float32 rows against camera counts normalised in the model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.scripts import load_script

ROOT = Path(__file__).resolve().parents[2]


def test_both_arms_run_on_the_same_cells_and_give_median_and_range(capsys: pytest.CaptureFixture[str]) -> None:
    bench = load_script("bench/raw_input.py")
    args = ["--bundle", str(ROOT / "models" / "default.stainless"), "--backend", "onnxruntime", "--precision",
            "fp32", "--distinct", "1", "--batch", "2", "--batches", "2", "--rounds", "2", "--json"]
    assert bench.main(args) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["backend"] == "onnxruntime-fp32" and res["cells_per_arm_and_round"] == 4
    for kind in ("float", "raw"):
        for figure in ("fill_cpu_ms_per_cell", "infer_wall_ms_per_cell", "infer_cpu_ms_per_cell"):
            median, least, most = res[kind][figure]
            assert 0 <= least <= median <= most and most > 0, (kind, figure)
