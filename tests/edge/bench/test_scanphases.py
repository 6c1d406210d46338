"""A scan's fill, steady state and drain, and the ratio they give (edge/bench/scanphases.py)."""

from __future__ import annotations

import math

import pytest

from edge.bench.scanphases import (
    BatchTime,
    ScanPhases,
    decompose,
    median_range,
    ratio_for_scan,
    scan_phases,
    scan_summary,
)


def _scan() -> list[BatchTime]:
    # submitted at 10.0; batches of 8, 8, 4 cells; a 0.1 s gap between the second and third
    return [BatchTime(10.2, 10.6, 8), BatchTime(10.6, 11.0, 8), BatchTime(11.1, 11.3, 4)]


def test_the_wall_time_splits_at_the_first_and_last_batch() -> None:
    p = scan_phases(10.0, 10.5, 11.35, _scan())
    assert p.fill_s == pytest.approx(0.2) and p.span_s == pytest.approx(1.1) and p.drain_s == pytest.approx(0.05)
    assert p.wall_s == pytest.approx(1.35) and p.after_capture_s == pytest.approx(0.85)
    assert p.cells == 20 and p.batches == 3
    assert p.busy_s == pytest.approx(1.0) and p.busy_fraction == pytest.approx(1.0 / 1.1)
    assert p.steady_cells_per_s == pytest.approx(20 / 1.1)


def test_the_ratio_is_the_steady_states_times_its_share_of_the_wall_time() -> None:
    p = scan_phases(10.0, 10.5, 11.35, _scan())
    d = decompose(p, alone_cells_per_s=20.0)
    assert d["ratio"] == pytest.approx(20 / 1.35 / 20.0)
    assert d["steady_ratio"] == pytest.approx(20 / 1.1 / 20.0)
    assert d["steady_share"] == pytest.approx(1.1 / 1.35)
    assert d["ratio"] == pytest.approx(d["steady_ratio"] * d["steady_share"])


def test_a_longer_scan_pays_fill_and_drain_once() -> None:
    # 100 cells/s in the steady state, 0.1 s of fill and drain, the backend alone at 100 cells/s
    assert ratio_for_scan(100.0, 100.0, 0.1, 10) == pytest.approx(0.5)  # 0.1 s of work, 0.1 s of fill and drain
    assert ratio_for_scan(100.0, 100.0, 0.1, 1000) == pytest.approx(10 / 10.1)
    assert ratio_for_scan(90.0, 100.0, 0.0, 50) == pytest.approx(0.9)  # no fill or drain: the steady state's ratio
    long_scans = [ratio_for_scan(80.0, 100.0, 0.07, n) for n in (20, 200, 2000, 20000)]
    assert long_scans == sorted(long_scans) and math.isclose(long_scans[-1], 0.8, rel_tol=1e-3)


def test_batches_outside_the_scan_or_none_are_refused_with_the_reason() -> None:
    with pytest.raises(ValueError, match="at least one batch"):
        scan_phases(0.0, 0.0, 1.0, [])
    with pytest.raises(ValueError, match="another scan"):
        scan_phases(10.3, 10.5, 11.35, _scan())  # the first batch started before the scan was submitted
    with pytest.raises(ValueError, match="another scan"):
        scan_phases(10.0, 10.5, 11.2, _scan())  # done before the last batch ended
    with pytest.raises(ValueError, match="must be > 0"):
        decompose(scan_phases(10.0, 10.5, 11.35, _scan()), 0.0)
    with pytest.raises(ValueError, match="fill_drain_s >= 0"):
        ratio_for_scan(100.0, 100.0, -0.1, 10)


def test_median_range_is_median_least_most() -> None:
    assert median_range([0.7, 0.9, 0.8, 0.65]) == [0.75, 0.65, 0.9]
    assert median_range([]) == []
    assert median_range([1.23456], digits=2) == [1.23, 1.23, 1.23]


def _phases(fill: float, span: float, drain: float, cells: int) -> ScanPhases:
    return ScanPhases(fill_s=fill, span_s=span, drain_s=drain, after_capture_s=drain + 0.3, busy_s=0.9 * span,
                      cells=cells, batches=cells // 8)


def test_scan_summary_gives_the_spread_and_the_ratio_of_longer_scans() -> None:
    # three chunks of 80 cells: the steady state at 40 cells/s against 50 alone (0.8), 0.1 s of fill and drain
    scans = [(_phases(0.08, 2.0, 0.02, 80), 50.0), (_phases(0.05, 2.0, 0.05, 80), 50.0),
             (_phases(0.09, 2.0, 0.01, 80), 50.0)]
    out = scan_summary(scans, cells_per_field=4.0)
    assert out["steady_ratio"] == [0.8, 0.8, 0.8] and out["busy_fraction"] == [0.9, 0.9, 0.9]
    assert out["fill_ms"] == [80.0, 50.0, 90.0] and out["drain_ms"] == [20.0, 10.0, 50.0]
    assert out["ratio"][0] == pytest.approx(80 / 2.1 / 50.0, abs=1e-3)
    r = out["ratio_for_scan_fields"]
    assert r["20"] == pytest.approx(80 / 2.1 / 50.0, abs=1e-3)  # 20 fields of 4 cells: the chunks themselves
    assert r["8"] < r["20"] < r["50"] < r["200"] < r["1000"] < 0.8 and r["1000"] == pytest.approx(0.8, abs=2e-3)
    assert len(out["chunks"]) == 3 and out["chunks"][0]["cells"] == 80
    assert scan_summary([], 4.0)["ratio"] == [] and "ratio_for_scan_fields" not in scan_summary([], 4.0)
