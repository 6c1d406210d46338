"""eval-style: a style checkpoint on folders of A and B images, paired or not."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from trainer.errors import TrainerError
from trainer.style.config import StyleModelConfig
from trainer.style.evaluate import evaluate_style
from trainer.style.models import build_style_generator, save_style_checkpoint, style_generator_kwargs


def identity_style(path: Path) -> Path:
    cfg = StyleModelConfig(generator="affine")
    g = build_style_generator(cfg, 3, 3)
    save_style_checkpoint(path, {"style": "same", "generator": g.state_dict(), "inverse": {},
                                 "model": {"generator": "affine", "kwargs": style_generator_kwargs(cfg),
                                           "in_channels": 3, "out_channels": 3, "patch_size": 32}})
    return path


def test_an_identity_style_keeps_colour_and_nuclei(style_folders: tuple[Path, Path], tmp_path: Path) -> None:
    a, b = style_folders
    ckpt = identity_style(tmp_path / "style.pt")
    r = evaluate_style(ckpt, a, b, strip=tmp_path / "strip.png")
    assert r["cells"] == 8 and r["shift"] == pytest.approx(0.0, abs=0.02) and r["nucleus_iou"] > 0.99
    assert r["distance_ab"] > 0.01 and (tmp_path / "strip.png").is_file()
    same = tmp_path / "same"
    shutil.copytree(a, same)
    p = evaluate_style(ckpt, a, same, paired=True)
    assert p["ssim_out_truth"] == pytest.approx(p["ssim_in_truth"], abs=1e-3) and p["ssim_in_truth"] == 1.0
    assert p["nucleus_iou_truth_ab"] == 1.0 and p["mae_in_truth"] == 0.0
    with pytest.raises(TrainerError, match="same file names"):
        evaluate_style(ckpt, a, b, paired=True)
