"""Style generators from the config, and the style checkpoint (``style.pt``).

A style checkpoint is a ``torch.save`` dict of plain types and tensors (``weights_only=True``)::

    format      "stainless-style-checkpoint"
    version     1
    style       the stain's name ("wright-giemsa"), payload ``stained:<style>`` on the wire
    model       {"generator", "kwargs", "in_channels", "out_channels", "patch_size"}
    generator   state dict of G_AB: A → B, the model that is exported
    inverse     state dict of G_BA: B → A (kept for inspection and cycle checks)
    config      the StyleConfig as a dict
    epoch, step, metrics

``G_AB`` maps ``(B, a_channels, H, W)`` in [0, 1] to ``(B, 3, H, W)`` in [0, 1].
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from trainer.checkpoint import save_checkpoint
from trainer.errors import CheckpointError
from trainer.models import STYLE_GENERATORS, AffineGenerator, PatchDiscriminator
from trainer.models.unet import GAREAU_2009, pseudo_colour_map
from trainer.style.config import StyleModelConfig

STYLE_FORMAT = "stainless-style-checkpoint"
STYLE_VERSION = 1


def style_generator_kwargs(cfg: StyleModelConfig) -> dict[str, Any]:
    """Constructor arguments of ``cfg.generator`` besides the channel counts."""
    if cfg.generator == "resnet":
        return {"features": cfg.features, "n_blocks": cfg.n_blocks, "n_down": cfg.n_down, "residual": cfg.residual}
    if cfg.generator == "unet":
        return {"features": cfg.features, "n_down": cfg.n_down, "residual": cfg.residual}
    return {"output": "clamp"}


def make_style_generator(name: str, in_channels: int, out_channels: int, kwargs: dict[str, Any]) -> nn.Module:
    """A style generator by registry name (:data:`trainer.models.STYLE_GENERATORS`)."""
    if name not in STYLE_GENERATORS:
        raise ValueError(f"unknown style generator {name!r}; valid: {', '.join(STYLE_GENERATORS)}")
    cls = STYLE_GENERATORS[name]
    if cls is AffineGenerator:
        return AffineGenerator(in_channels, out_channels=out_channels, **kwargs)
    return cls(in_channels, out_channels, **kwargs)


def build_style_generator(cfg: StyleModelConfig, in_channels: int, out_channels: int) -> nn.Module:
    """``(B, in_channels, H, W) → (B, out_channels, H, W)``; the affine one starts from ``cfg.affine_init``."""
    g = make_style_generator(cfg.generator, in_channels, out_channels, style_generator_kwargs(cfg))
    if isinstance(g, AffineGenerator) and cfg.affine_init != "random":
        if cfg.affine_init == "identity":
            if in_channels != out_channels:
                raise ValueError(f"affine identity init needs equal channel counts, found {in_channels} → "
                                 f"{out_channels}; use affine_init = 'pseudo-colour'")
            g.init_map(torch.eye(out_channels), torch.zeros(out_channels))
        elif out_channels == 3:  # pseudo-colour: N channels → RGB (the inverse direction starts random)
            colours = cfg.pseudo_colours or GAREAU_2009
            if len(colours) != in_channels:
                raise ValueError(f"pseudo-colour init: {len(colours)} colours for {in_channels} input channels; "
                                 "set model.pseudo_colours (one RGB triple per channel)")
            g.init_map(*pseudo_colour_map(tuple(colours)))
    return g


def build_style_discriminator(cfg: StyleModelConfig, in_channels: int) -> nn.Module:
    """The seed's PatchGAN: ``cfg.d_layers`` stride-2 layers, instance norm, no spectral norm."""
    return PatchDiscriminator(in_channels, cfg.d_features, cfg.d_layers, spectral=False, norm="instance")


def save_style_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    save_checkpoint(path, {**payload, "format": STYLE_FORMAT, "version": STYLE_VERSION})


def load_style_checkpoint(path: Path) -> dict[str, Any]:
    """Read and check a ``style.pt``; :class:`CheckpointError` says what is wrong."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"style checkpoint {path} not found; `stainless-train fit-style` writes RUN/style.pt")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for truncated / foreign files
        raise CheckpointError(f"{path} is not a readable torch checkpoint: {exc}") from exc
    found = ckpt.get("format") if isinstance(ckpt, dict) else type(ckpt).__name__
    if found != STYLE_FORMAT or ckpt.get("version") != STYLE_VERSION:
        raise CheckpointError(f"{path}: expected a {STYLE_FORMAT!r} file version {STYLE_VERSION}, found {found!r} "
                              f"(a paired generator's best.pt is not a style; train one with fit-style)")
    return dict(ckpt)


def style_generator_from_checkpoint(ckpt: dict[str, Any]) -> nn.Module:
    """G_AB of a loaded style checkpoint, with its weights, in eval mode."""
    spec = ckpt["model"]
    try:
        g = make_style_generator(spec["generator"], spec["in_channels"], spec["out_channels"], spec["kwargs"])
        g.load_state_dict(ckpt["generator"])
    except (ValueError, RuntimeError) as exc:
        raise CheckpointError(f"style checkpoint generator {spec} does not load: {str(exc).splitlines()[0]}") from exc
    return g.eval()
