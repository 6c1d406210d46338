"""The recipe ablation: one run per recipe and seed, a table with the seed-to-seed spread."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.trainer.conftest import write_config
from trainer.ablation import format_table, run_ablation
from trainer.cli import main
from trainer.config import load_config


def test_ablation_trains_each_recipe_and_seed(tmp_path: Path, store: Path) -> None:
    cfg = load_config(write_config(tmp_path / "c.toml", store, tmp_path / "unused",
                                   train={"epochs": 1, "max_steps_per_epoch": 2}))
    result = run_ablation(cfg, ["le8", "brightfield"], [0, 1], tmp_path / "abl")
    assert len(result["runs"]) == 4
    rows = {(r["generator"], r["recipe"]): r for r in result["table"]}
    assert set(rows) == {("rrdb", "le8"), ("rrdb", "brightfield")}
    for (gen, recipe), row in rows.items():  # mean and seed-to-seed (sample) spread of that recipe's runs
        ssims = [r["ssim"] for r in result["runs"] if (r["generator"], r["recipe"]) == (gen, recipe)]
        assert row["seeds"] == len(ssims) == 2
        assert row["ssim"] == pytest.approx(np.mean(ssims)) and row["ssim_std"] == pytest.approx(np.std(ssims, ddof=1))
    assert rows[("rrdb", "le8")]["gflop_per_cell"] > rows[("rrdb", "brightfield")]["gflop_per_cell"]
    assert (tmp_path / "abl" / "rrdb-brightfield-s1" / "best.pt").exists()
    assert "brightfield" in format_table(result["table"])


def test_ablation_cli_json(tmp_path: Path, store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--epochs and --dataset replace the config's (the results' retests reuse the base configs)."""
    cfg = write_config(tmp_path / "c.toml", tmp_path / "absent.zarr", tmp_path / "unused",
                       train={"epochs": 1, "max_steps_per_epoch": 1})
    assert main(["ablation", "--config", str(cfg), "--recipes", "brightfield", "--seeds", "3", "--generators",
                 "affine", "--epochs", "2", "--dataset", str(store), "--out", str(tmp_path / "a"), "--json",
                 "--threads", "1"]) == 0
    row = json.loads(capsys.readouterr().out)["table"][0]
    assert (row["generator"], row["recipe"]) == ("affine", "brightfield")
    assert (tmp_path / "a" / "ablation.json").exists()
    metrics = (tmp_path / "a" / "affine-brightfield-s3" / "metrics.csv").read_text().splitlines()
    assert [line.split(",")[1] for line in metrics if line.startswith("val,")] == ["1", "2"]


def test_a_stopped_ablation_resumes_its_runs_instead_of_refusing_or_restarting_them(tmp_path: Path,
                                                                                    store: Path) -> None:
    from core.config import ConfigError

    cfg = load_config(write_config(tmp_path / "c.toml", store, tmp_path / "unused",
                                   train={"epochs": 1, "max_steps_per_epoch": 2}))
    out = tmp_path / "abl"
    run_ablation(cfg, ["brightfield"], [0], out)  # stopped after its first run
    longer = cfg.with_overrides(train={"epochs": 2})
    with pytest.raises(ConfigError, match="already holds a run"):
        run_ablation(longer, ["brightfield", "le8"], [0], out)
    result = run_ablation(longer, ["brightfield", "le8"], [0], out, resume=True)
    assert [r["recipe"] for r in result["runs"]] == ["brightfield", "le8"]
    for name in ("rrdb-brightfield-s0", "rrdb-le8-s0"):  # continued from epoch 1, not started again
        metrics = (out / name / "metrics.csv").read_text().splitlines()
        assert [line.split(",")[1] for line in metrics if line.startswith("val,")] == ["1", "2"]
