"""``bench/tiling.py --json``: the issue's contract ``{"methods": {name: {seam_mae, compute_ratio}}}``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.scripts import load_script

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow  # renders a simulated field and stains it eight ways (~20 s on a loaded machine)
def test_json_lists_every_method_with_seam_and_compute(capsys: pytest.CaptureFixture[str]) -> None:
    bench = load_script("bench/tiling.py")
    assert bench.main(["--size", "128", "--tile", "64", "--max-tile", "80", "--field-stain", "72x64", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert set(res["methods"]) == {"independent", "overlap-crop", "overlap-blend", "halo"}
    for m in res["methods"].values():
        assert 0 <= m["seam_mae"] <= 1 and m["compute_ratio"] >= 1
    assert res["methods"]["halo"]["seam_mae"] < 1e-5 < res["methods"]["independent"]["seam_mae"]
    assert res["field_stain"]["fields"]["72x64"]["payload_bytes"] == 72 * 64 * 3
