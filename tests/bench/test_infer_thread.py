"""``bench/infer_thread.py --json``: the inference and publishing threads' time per batch."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.scripts import load_script

ROOT = Path(__file__).resolve().parents[2]


def test_json_splits_the_model_from_the_rest_and_restores_the_functions(capsys: pytest.CaptureFixture[str]) -> None:
    bench = load_script("bench/infer_thread.py")
    before = {label: getattr(owner, name) for label, (owner, name, _) in bench.PARTS.items()}
    bundle = str(ROOT / "models" / "fast.stainless")
    assert bench.main(["--bundle", bundle, "--fields", "4", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    parts = res["parts"]
    assert res["batches"] >= 1 and res["cells"] >= res["batches"]
    assert set(parts) == set(bench.PARTS) | {"inference: around the model"}
    model, whole = parts["inference: model (run_checked)"], parts["inference: batch (model and around it)"]
    assert 0 < model["wall_ms_per_batch"] <= whole["wall_ms_per_batch"]
    assert parts["inference: around the model"]["cpu_ms_per_batch"] < model["cpu_ms_per_batch"]
    assert 0 < parts["publishing: fidelity score"]["cpu_ms_per_batch"] <= parts["publishing: batch"]["cpu_ms_per_batch"]
    assert all(getattr(owner, name) is before[label] for label, (owner, name, _) in bench.PARTS.items())
