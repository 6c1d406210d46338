"""Style generators from the config and the style checkpoint format."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from trainer.checkpoint import save_checkpoint
from trainer.errors import CheckpointError
from trainer.models.unet import GAREAU_2009
from trainer.style.config import StyleModelConfig
from trainer.style.models import (
    build_style_generator,
    load_style_checkpoint,
    save_style_checkpoint,
    style_generator_from_checkpoint,
    style_generator_kwargs,
)


def test_affine_identity_init_is_exactly_the_identity() -> None:
    g = build_style_generator(StyleModelConfig(generator="affine"), 3, 3)
    x = torch.rand(2, 3, 8, 8)
    torch.testing.assert_close(g(x), x, atol=1e-6, rtol=0)


def test_affine_pseudo_colour_init_is_gareaus_transform() -> None:
    g = build_style_generator(StyleModelConfig(generator="affine", affine_init="pseudo-colour"), 2, 3)
    x = torch.rand(4, 2, 8, 8)
    r, f = x[:, :1], x[:, 1:]
    e, h = (torch.tensor(c).reshape(1, 3, 1, 1) for c in GAREAU_2009)
    want = (1 - r * (1 - e) - f * (1 - h)).clamp(0, 1)
    torch.testing.assert_close(g(x), want, atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match="equal channel counts"):
        build_style_generator(StyleModelConfig(generator="affine"), 2, 3)


def test_checkpoint_round_trip_and_foreign_files(tmp_path: Path) -> None:
    cfg = StyleModelConfig(features=2, n_blocks=1)
    g = build_style_generator(cfg, 3, 3)
    save_style_checkpoint(tmp_path / "style.pt", {
        "style": "x", "generator": g.state_dict(), "inverse": {},
        "model": {"generator": "resnet", "kwargs": style_generator_kwargs(cfg), "in_channels": 3, "out_channels": 3,
                  "patch_size": 16}})
    back = style_generator_from_checkpoint(load_style_checkpoint(tmp_path / "style.pt"))
    x = torch.rand(1, 3, 16, 16)
    g.eval()
    torch.testing.assert_close(back(x), g(x))
    save_checkpoint(tmp_path / "best.pt", {"model": {}})  # a paired generator's checkpoint
    with pytest.raises(CheckpointError, match="stainless-style-checkpoint"):
        load_style_checkpoint(tmp_path / "best.pt")
    with pytest.raises(CheckpointError, match="not found"):
        load_style_checkpoint(tmp_path / "none.pt")
