"""The CycleGAN loop: image pool, learning-rate decay, a tiny run and its outputs."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch

from core.config import ConfigError
from trainer.style.config import StyleConfig
from trainer.style.fit import ImagePool, fit_style, linear_decay
from trainer.style.models import load_style_checkpoint, style_generator_from_checkpoint


def test_image_pool_fills_then_mixes_history_with_new_images() -> None:
    pool = ImagePool(4, random.Random(0))
    first = torch.arange(4, dtype=torch.float32).reshape(4, 1)
    assert torch.equal(pool.query(first), first)  # filling: the new images come back unchanged
    new = torch.arange(100, 164, dtype=torch.float32).reshape(64, 1)
    out = pool.query(new)
    values = set(out.flatten().tolist())
    assert len(pool.images) == 4
    assert values & {0.0, 1.0, 2.0, 3.0}  # some answers are historical images
    assert values & set(new.flatten().tolist())  # and some are the new ones
    assert values <= set(new.flatten().tolist()) | {0.0, 1.0, 2.0, 3.0}
    passthrough = ImagePool(0, random.Random(0))
    assert torch.equal(passthrough.query(new), new)


def test_linear_decay_keeps_then_decays_toward_zero() -> None:
    f = linear_decay(4, 0)  # default: the second half decays
    assert [f(e) for e in range(4)] == pytest.approx([1.0, 1.0, 2 / 3, 1 / 3])
    g = linear_decay(10, 3)
    assert [g(e) for e in (6, 7, 9)] == pytest.approx([1.0, 0.75, 0.25])


def _cfg(a: Path, b: Path, out: Path, **model: object) -> StyleConfig:
    return StyleConfig.from_dict({
        "data": {"a": str(a), "b": str(b), "patch_size": 32, "val_fraction": 0.25},
        "model": {"features": 2, "n_blocks": 1, "d_features": 4, **model},
        "optim": {"batch_size": 2, "pool_size": 3},
        "train": {"out": str(out), "style": "bluer", "epochs": 2, "steps_per_epoch": 2, "log_every_steps": 1}})


@pytest.mark.parametrize("generator", ["resnet", "unet"])
def test_a_tiny_run_writes_a_loadable_style_and_its_figures(style_folders: tuple[Path, Path], tmp_path: Path,
                                                            generator: str) -> None:
    torch.set_num_threads(1)
    cfg = _cfg(*style_folders, tmp_path / "run", generator=generator)
    result = fit_style(cfg)
    assert (result.status, result.epoch, result.step) == ("finished", 2, 4)
    for name in ("style.pt", "config.toml", "metrics.csv", "strip.png"):
        assert (tmp_path / "run" / name).is_file()
    rows = (tmp_path / "run" / "metrics.csv").read_text().splitlines()
    assert sum(r.startswith("val,") for r in rows) == 2 and sum(r.startswith("train,") for r in rows) == 4
    m = result.metrics
    assert 0.0 <= m["nucleus_iou"] <= 1.0 and m["cells"] == 2 and np.isfinite(m["shift"])
    ckpt = load_style_checkpoint(tmp_path / "run" / "style.pt")
    assert ckpt["style"] == "bluer" and ckpt["model"]["generator"] == generator and ckpt["epoch"] == 2
    g = style_generator_from_checkpoint(ckpt)
    with torch.no_grad():
        y = g(torch.rand(3, 3, 32, 32))
    assert y.shape == (3, 3, 32, 32) and float(y.min()) >= 0.0 and float(y.max()) <= 1.0
    with pytest.raises(ConfigError, match="already holds a style run"):
        fit_style(cfg)


def test_n_channel_domain_a_trains_from_the_pseudo_colour_baseline(style_folders: tuple[Path, Path],
                                                                    tmp_path: Path) -> None:
    """The seed's confocal case: A is a 2-channel (reflectance, fluorescence) pair, B RGB; the affine
    G_AB starts as Gareau's transform, the identity term is off (channel counts differ)."""
    a = tmp_path / "rf"
    a.mkdir()
    rng = np.random.default_rng(0)
    for i in range(4):
        np.save(a / f"rf_{i}.npy", rng.uniform(0, 1, (2, 32, 32)).astype(np.float32))
    doc = _cfg(a, style_folders[1], tmp_path / "run").to_dict()
    doc["data"]["a_channels"] = 2
    doc["loss"]["identity"] = 0.0
    doc["model"].update(generator="affine", affine_init="pseudo-colour")
    result = fit_style(StyleConfig.from_dict(doc))
    assert result.status == "finished" and "nucleus_iou" not in result.metrics  # no nuclei to compare in R/F
    g = style_generator_from_checkpoint(load_style_checkpoint(tmp_path / "run" / "style.pt"))
    assert g(torch.rand(1, 2, 8, 8)).shape == (1, 3, 8, 8)
