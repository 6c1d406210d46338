"""``stainless-train build-synthetic``: renders a store, resumes, and reports as JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from trainer.cli import main
from trainer.data.store import Dataset


def test_build_synthetic_renders_and_resumes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["build-synthetic", "--out", str(tmp_path / "d.zarr"), "--windows", "3", "--window-px", "128",
            "--recipe", "le8", "--wbc-density", "3000", "--seed", "2", "--json"]
    assert main(args) == 0
    first = json.loads(capsys.readouterr().out)
    assert first["windows"] == 3 and first["samples"] > 0
    ds = Dataset(tmp_path / "d.zarr")
    assert len(ds) == first["samples"] and ds.recipe.id == "le8"
    assert ds.inputs(0).shape == (4 * 3, 64, 64)
    assert main(args) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["windows_skipped"] == 3 and len(Dataset(tmp_path / "d.zarr")) == first["samples"]


def test_bad_settings_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["build-synthetic", "--out", str(tmp_path / "d.zarr"), "--crop-px", "15"]) == 2
    assert "crop_px" in capsys.readouterr().err
