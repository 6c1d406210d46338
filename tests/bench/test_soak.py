"""``bench/soak.py``: a short soak on the virtual bench loses and duplicates no cell."""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.support.scripts import load_script

ROOT = Path(__file__).resolve().parents[2]


def bench() -> ModuleType:
    return load_script("bench/soak.py")


def test_the_longest_gap_is_taken_within_one_lifetime() -> None:
    gap = bench().longest_gap
    assert gap([5.0, 1.0, 2.0, 9.0, 2.5], 1.0, 5.0) == (2.5, 5.0)  # 9.0 is outside [1, 5]
    assert gap([3.0], 0.0, 10.0) == (0.0, 0.0)


class ReprDict(dict[str, Any]):
    """The report, whole in an assertion message (pytest shortens a plain dict)."""

    def __repr__(self) -> str:
        return json.dumps(self, indent=1)


@pytest.mark.slow
def test_a_short_soak_receives_every_detected_cell_once() -> None:
    soak = bench()
    report = soak.soak(soak.SoakPlan(seconds=25.0, seed=1))
    r = ReprDict(report)
    cells, daemon, updates = r["cells"], r["daemon"], r["updates"]
    assert cells["detected"] == cells["received"] >= 1, r
    assert cells["duplicates"] == cells["announced_not_received"] == cells["received_not_announced"] == 0, r
    sub = r["subscriber"]
    assert sub["sessions"] >= 2 and sub["gaps"].get("cell", 0) == sub["gaps"].get("field", 0) == 0, r
    assert (daemon["lifetimes"], daemon["unplanned_restarts"], daemon["stage_failures"]) == (2, 0, 0), r
    assert updates["flash"]["state"] == "committed" and cells["by_model_version"].get("0.3.0", 0) >= 16, r
    assert updates["rollback"]["state"].startswith("rolled back: requested"), r
    assert updates["restart"]["same_epoch"] and updates["restart"]["model"] == "0.2.0", r
    assert r["led"]["reconnects"] >= 1, r
