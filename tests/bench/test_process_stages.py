"""``bench/process_stages.py --json``: the processing thread's CPU per stage on bench fields."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.scripts import load_script

ROOT = Path(__file__).resolve().parents[2]


def test_json_gives_every_stage_and_restores_the_functions(capsys: pytest.CaptureFixture[str]) -> None:
    bench = load_script("bench/process_stages.py")
    before = {label: getattr(mod, name) for label, (mod, name) in bench.STAGES.items()}
    bundle = str(ROOT / "models" / "default.stainless")
    assert bench.main(["--bundle", bundle, "--distinct", "2", "--reps", "1", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    stages = res["stages_cpu_ms_per_field"]
    assert set(stages) == set(bench.STAGES) and res["fields"] == 2
    assert 0 < stages["qc"] < res["process_cpu_ms_per_field"]
    assert stages["qc.saturation"] <= stages["qc"] and stages["crops.crop"] <= stages["crops, payloads and jobs"]
    assert 0 < stages["cell inputs into the batch (fill_input)"] < res["process_cpu_ms_per_field"]
    assert res["fidelity_cpu_ms_per_cell"] > 0
    assert all(getattr(mod, name) is before[label] for label, (mod, name) in bench.STAGES.items())


def test_both_row_kinds_alternate_and_give_median_and_range(capsys: pytest.CaptureFixture[str]) -> None:
    bench = load_script("bench/process_stages.py")
    bundle = str(ROOT / "models" / "default.stainless")
    args = ["--bundle", bundle, "--distinct", "1", "--reps", "1", "--input", "both", "--rounds", "2", "--json"]
    assert bench.main(args) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["rounds"] == 2 and res["cells_per_field"] > 0
    for kind in ("float", "raw"):
        median, least, most = res[kind]["process_cpu_ms_per_field"]
        assert 0 < least <= median <= most
        assert set(res[kind]["stages_cpu_ms_per_field"]) == set(bench.STAGES)
        assert res[kind]["stages_cpu_ms_per_field"]["cell inputs into the batch (fill_input)"][0] > 0
