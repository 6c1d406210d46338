"""Evaluation: JSON summary with per-cell-type breakdown, the HTML/PNG report, and refusals."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from tests.trainer.conftest import make_store
from tests.trainer.test_nucleus import render_cell
from trainer.cli import main
from trainer.data.store import Dataset
from trainer.errors import CheckpointError
from trainer.evaluate import evaluate
from trainer.report import write_report


def test_evaluate_reports_metrics_nuclei_and_cell_types(trained: Path, store: Path) -> None:
    ev = evaluate(trained, store, "test")
    s = ev.summary
    n_test = len(Dataset(store).split_indices("test"))
    assert s["n"] == len(ev.samples) == n_test
    assert 0.0 < s["ssim"] <= 1.0 and s["mae"] < 0.2 and s["psnr"] > 10
    for col in ("ssim", "mae", "nucleus_iou"):  # the summary is the mean over the cells it lists
        assert s[col] == pytest.approx(np.mean([r[col] for r in ev.samples]), rel=1e-9), col
    assert s["flagged"] == sum(bool(r["flagged"]) for r in ev.samples) and s["flagged_rate"] == s["flagged"] / n_test
    assert s["nuclei_removed"] == sum(r["removed"] for r in ev.samples)
    assert set(s["by_cell_type"]) == {"lymphocyte", "neutrophil"}
    assert sum(t["n"] for t in s["by_cell_type"].values()) == n_test
    assert s["recipe"] == "le8" and s["generator"] == "rrdb" and s["gflop_per_cell"] > 0


def test_report_has_galleries_and_html(trained: Path, store: Path, tmp_path: Path) -> None:
    ev = evaluate(trained, store, "val")
    index = write_report(ev, tmp_path / "report", n_gallery=3)
    assert "nucleus_iou" in index.read_text() and "lymphocyte" in index.read_text()
    for name in ("random", "best", "worst"):
        png = cv2.imread(str(tmp_path / "report" / f"gallery_{name}.png"))
        tile = 32 * 3 + 4
        assert png.shape == (18 + 3 * tile, 3 * tile, 3)
    assert json.loads((tmp_path / "report" / "metrics.json").read_text())["n"] == len(ev.samples)
    assert len((tmp_path / "report" / "samples.csv").read_text().splitlines()) == len(ev.samples) + 1


def test_checkpoint_and_dataset_with_other_channels_are_refused(trained: Path, tmp_path: Path) -> None:
    other = make_store(tmp_path / "bf.zarr", n=8, recipe="brightfield")
    with pytest.raises(CheckpointError, match="'le8'"):
        evaluate(trained, other)
    with pytest.raises(CheckpointError, match="not found"):
        evaluate(tmp_path / "none.pt", other)


def test_cli_evaluate_json(trained: Path, store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["evaluate", str(trained), str(store), "--split", "test", "--report", str(tmp_path / "r"), "--json",
               "--threads", "1"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert {"ssim", "psnr", "mae", "fourier", "lbp_chi2", "nucleus_iou", "flagged", "by_cell_type"} <= set(out)
    assert (tmp_path / "r" / "index.html").exists()
    assert main(["evaluate", str(tmp_path / "missing.pt"), str(store)]) == 2


def test_cli_segment_nucleus_writes_a_mask_of_the_image_size(tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    rgb, truth = render_cell("wright", lobes=3, size=96)
    cv2.imwrite(str(tmp_path / "cell.png"), cv2.cvtColor((rgb * 255).astype(np.uint8), cv2.COLOR_RGB2BGR))
    assert main(["segment-nucleus", str(tmp_path / "cell.png"), "--out", str(tmp_path / "m.png"), "--json"]) == 0
    mask = cv2.imread(str(tmp_path / "m.png"), cv2.IMREAD_GRAYSCALE)
    assert mask.shape == truth.shape and ((mask > 0) & truth).sum() > 0.8 * truth.sum()
    assert json.loads(capsys.readouterr().out)["components"] == 3
    (tmp_path / "grey.png").write_bytes(b"not an image")
    assert main(["segment-nucleus", str(tmp_path / "grey.png"), "--out", str(tmp_path / "x.png")]) == 2


def test_vgg_distance_is_reported_when_weights_are_given(trained: Path, store: Path, tmp_path: Path) -> None:
    from trainer.vgg import vgg19_features

    torch.save({f"features.{k}": v for k, v in vgg19_features("block4_conv4").state_dict().items()},
               tmp_path / "vgg19.pth")
    ev = evaluate(trained, store, "test", vgg_weights=tmp_path / "vgg19.pth")
    assert all(r["vgg"] >= 0 for r in ev.samples) and ev.summary["vgg"] > 0
    assert "vgg" not in evaluate(trained, store, "test").summary  # no file configured: no column
