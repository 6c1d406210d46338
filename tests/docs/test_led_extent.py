"""docs/results/led_extent.py: a wider LED band or a larger die changes the single-LED images more."""

from __future__ import annotations

from pathlib import Path

from tests.support.scripts import load_script

ROOT = Path(__file__).resolve().parents[2]
led_extent = load_script("docs/results/led_extent.py")


def test_extent_effects_grow_with_the_band_and_the_die_and_vanish_at_zero() -> None:
    point = led_extent.measure("le8", band_nm=0.0, die_mm=0.0, field_px=48)
    narrow = led_extent.measure("le8", band_nm=10.0, die_mm=0.2, field_px=48)
    wide = led_extent.measure("le8", band_nm=40.0, die_mm=0.6, field_px=48)
    assert [r["channel"] for r in point] == ["r", "g", "b"]
    for p, n, w in zip(point, narrow, wide, strict=True):
        assert p["band_rms"] == 0.0 and p["die_rms"] < 1e-6 and p["contrast_rms"] > 0.05
        assert 0.0 < n["band_fraction"] < w["band_fraction"] and 0.0 < n["die_fraction"] < w["die_fraction"]
