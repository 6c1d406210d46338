"""Distillation: students on the teacher's recipe or a sub-recipe, and the trade-off table."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from tests.trainer.conftest import write_config
from trainer.checkpoint import load_checkpoint
from trainer.cli import main
from trainer.commands.distill import parse_students
from trainer.config import load_config
from trainer.errors import CheckpointError
from trainer.fit import fit


def test_student_on_a_sub_recipe_learns_from_the_teacher(trained: Path, store: Path, tmp_path: Path) -> None:
    cfg = load_config(write_config(tmp_path / "c.toml", store, tmp_path / "s", data={"recipe": "brightfield"},
                                   loss={"teacher": str(trained), "distill": 0.5},
                                   model={"features": 4, "growth": 4}, train={"epochs": 1, "log_every_steps": 1}))
    fit(cfg)
    best = load_checkpoint(tmp_path / "s" / "best.pt")
    assert best["recipe"]["channel_names"] == ["bf"] and best["model"]["in_channels"] == 3
    rows = [r for r in csv.DictReader((tmp_path / "s" / "metrics.csv").open()) if r["kind"] == "train"]
    assert rows and all(float(r["distill"]) > 0 for r in rows)


def test_student_recipe_must_be_inside_the_teacher_recipe(trained: Path, store: Path, tmp_path: Path) -> None:
    cfg = load_config(write_config(tmp_path / "c.toml", store, tmp_path / "s", data={"recipe": "le18"},
                                   loss={"teacher": str(trained)}))
    with pytest.raises(CheckpointError, match="not a sub-recipe"):
        fit(cfg)


def test_distill_cli_reports_the_tradeoff(trained: Path, store: Path, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    cfg = write_config(tmp_path / "c.toml", store, tmp_path / "unused", loss={"teacher": str(trained)},
                       train={"epochs": 1, "max_steps_per_epoch": 2})
    assert main(["distill", "--config", str(cfg), "--students", "features=4,growth=4;generator=affine,recipe=le8",
                 "--out", str(tmp_path / "d"), "--json", "--threads", "1"]) == 0
    rows = json.loads(capsys.readouterr().out)["rows"]
    assert [r["model"].split("-")[0] for r in rows] == ["teacher", "student0", "student1"]
    assert rows[0]["ssim_drop"] == 0.0 and rows[0]["flop_fraction"] == 1.0
    assert all(r["flop_fraction"] < 1.0 and r["ms_per_cell"] > 0 for r in rows[1:])


def test_parse_students() -> None:
    assert parse_students("n_blocks=1,features=16; recipe=le8") == [{"n_blocks": 1, "features": 16},
                                                                     {"recipe": "le8"}]
