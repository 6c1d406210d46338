"""Checkpoint files: what ``fit`` writes and ``evaluate`` / export read.

A checkpoint is a ``torch.save`` of a dict of plain types and tensors (loadable with
``torch.load(..., weights_only=True)``; no pickled classes)::

    format        "stainless-trainer-checkpoint"
    version       1
    kind          "best" (lowest validation loss) | "last" (latest state, for --resume)
    model         {"generator": "rrdb", "kwargs": {...}, "in_channels": 132, "patch_size": 64}
    generator     generator state dict (float32, CPU)
    recipe        {"id": "full-nohe", "hash": "...", "channel_names": ["bf", "led0", ...]}
    config        the resolved FitConfig as a dict (``FitConfig.from_dict`` reads it back)
    epoch         epochs completed (a mid-epoch "last" holds the epoch in progress)
    step          optimiser steps done in total
    metrics       {"val_loss": ..., "val_ssim": ..., "val_mae": ..., "train_loss": ...}
    train_state   only in "last": discriminator, optimiser, scheduler and AMP scaler states, RNG states
                  (torch, cuda, python, numpy), early-stopping state and ``epoch_step`` (batches done in
                  the current epoch)

Input of the generator: ``(B, 3·len(recipe), P, P)`` float32 in [0, 1], channels in recipe order
(``channel_names`` × RGB), normalised like :meth:`trainer.data.store.Dataset.inputs`; output
``(B, 3, P, P)`` RGB in [0, 1].
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from trainer.errors import CheckpointError
from trainer.models import GENERATORS
from trainer.models.common import INPUT_CENTRE

FORMAT = "stainless-trainer-checkpoint"
VERSION = 1


def save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    """Write atomically (temporary file + rename): a crash never leaves a half-written checkpoint."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    torch.save({"format": FORMAT, "version": VERSION, **payload}, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Read and check a checkpoint; raise :class:`CheckpointError` saying what is wrong."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} not found; expected a best.pt / last.pt written by "
                              "`stainless-train fit`")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for truncated / foreign files
        raise CheckpointError(f"{path} is not a readable torch checkpoint: {exc}") from exc
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(f"{path}: expected a {FORMAT!r} file, found "
                              f"{ckpt.get('format') if isinstance(ckpt, dict) else type(ckpt).__name__!r}")
    if ckpt.get("version") != VERSION:
        raise CheckpointError(f"{path}: checkpoint version {ckpt.get('version')}, this stainless reads {VERSION}")
    return ckpt


def generator_from_checkpoint(ckpt: dict[str, Any]) -> nn.Module:
    """Rebuild the generator of a loaded checkpoint with its weights, in eval mode."""
    spec = ckpt["model"]
    if spec["generator"] not in GENERATORS:
        raise CheckpointError(f"checkpoint generator {spec['generator']!r} unknown; valid: {', '.join(GENERATORS)}")
    model = GENERATORS[spec["generator"]](spec["in_channels"], **spec["kwargs"])
    load_generator_state(model, ckpt)
    return model.eval()


def load_generator_state(model: nn.Module, ckpt: dict[str, Any]) -> None:
    """Copy the checkpoint's generator weights into ``model``, or explain why they do not fit."""
    state = dict(ckpt["generator"])
    for key, value in model.state_dict().items():  # checkpoints from before InputNorm: the fixed centring
        if key in ("norm.mean", "norm.scale") and key not in state:
            state[key] = torch.full_like(value, INPUT_CENTRE) if key == "norm.mean" else torch.ones_like(value)
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        spec = ckpt["model"]
        raise CheckpointError(f"checkpoint generator ({spec['generator']}, {spec['in_channels']} input channels, "
                              f"{spec['kwargs']}) does not fit this model: {str(exc).splitlines()[0]}") from exc


def check_recipe(ckpt: dict[str, Any], channel_names: tuple[str, ...] | list[str], where: str) -> None:
    """Refuse a dataset / recipe whose channels differ from those the generator was trained on."""
    want = list(ckpt["recipe"]["channel_names"])
    found = list(channel_names)
    if want != found:
        diff = sorted(set(want) ^ set(found))[:6]
        raise CheckpointError(f"{where}: the checkpoint expects recipe {ckpt['recipe']['id']!r} "
                              f"({len(want)} images), found {len(found)} images (differing: {diff}); "
                              "open the dataset with the checkpoint's recipe (a sub-recipe of its capture)")
