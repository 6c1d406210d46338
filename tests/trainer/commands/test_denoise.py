"""``stainless-train denoise``: trains, picks the best skip, scores staining, writes its files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from trainer.cli import main
from trainer.denoise import load_denoiser


@pytest.mark.slow  # renders two simulator fields and trains two nets: ~1-2 min on a loaded 2-core machine
def test_denoise_command_reports_the_staining_effect(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "dn"
    code = main(["denoise", "--out", str(out), "--fields", "1", "--eval-fields", "1", "--size", "128",
                 "--steps", "3", "--skips", "multiply,divide", "--factor", "64", "--json"])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert report["best_skip"] in ("multiply", "divide") and set(report["skips"]) == {"multiply", "divide"}
    assert report["cells"] >= 1
    st = report["staining"]
    assert set(st) == {"calibrated", "short", "denoised", "noise-free"}
    assert 0 < st["short"]["ssim"] < 1 and report["planes"]["ssim_short"] < report["planes"]["ssim_calibrated"]
    assert report["improves_staining"] == (st["denoised"]["ssim"] > st["short"]["ssim"])
    assert json.loads((out / "report.json").read_text())["best_skip"] == report["best_skip"]
    assert (out / "figure.png").stat().st_size > 1000
    assert load_denoiser(out / "denoiser.pt").skip == report["best_skip"]


def test_unknown_skip_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["denoise", "--out", str(tmp_path), "--skips", "subtract"]) == 2
    assert "choose from log-add, multiply, divide" in capsys.readouterr().err
