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
import tarfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from edge.device.bundle import check_hashes, read_members
from edge.device.errors import BundleError
from edge.device.manifest import MANIFEST_NAME, Manifest
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
    """Read and check a checkpoint; raise :class:`CheckpointError` saying what is wrong.

    A model bundle (``.stainless``) reads as the ``best`` checkpoint it was exported from
    (:func:`checkpoint_from_bundle`), so a shipped model can be evaluated or distilled without its
    training run."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} not found; expected a best.pt / last.pt written by "
                              "`stainless-train fit`, or a model bundle (.stainless)")
    if tarfile.is_tarfile(path):
        return checkpoint_from_bundle(path)
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


def checkpoint_from_bundle(bundle: Path) -> dict[str, Any]:
    """The ``best`` checkpoint a model bundle was exported from: model, recipe, config and metrics from
    its manifest (``training`` is the checkpoint's record), the generator's weights from its fp32 ONNX
    (exported with the parameters' names). The members' hashes are checked, not the signature."""
    import onnx

    try:
        members = read_members(bundle)
        manifest = Manifest.from_dict(Manifest.parse_json(members.get(MANIFEST_NAME, b"")))
        check_hashes(manifest, members)
    except BundleError as exc:
        raise CheckpointError(f"{bundle}: not a readable model bundle: {exc}") from exc
    training = manifest.doc.get("training") or {}
    if "model" not in training or "model.fp32.onnx" not in members:
        raise CheckpointError(f"{bundle}: the manifest records no training model or the bundle holds no "
                              "model.fp32.onnx; only bundles made by `stainless-export bundle` read as a checkpoint")
    weights = _onnx_weights(onnx.load_from_string(members["model.fp32.onnx"]).graph)
    spec = {k: v for k, v in training["model"].items() if k != "gflop_per_cell"}
    try:
        state = GENERATORS[spec["generator"]](spec["in_channels"], **spec["kwargs"]).state_dict()
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{bundle}: the manifest's training.model {spec} does not describe a generator of "
                              f"this stainless ({', '.join(GENERATORS)}): {exc!r}") from exc
    missing = sorted(set(state) - set(weights))
    if missing:
        raise CheckpointError(f"{bundle}: its fp32 ONNX lacks the weights {missing[:5]}; export it again with "
                              "parameter names (`stainless-export bundle`)")
    return {"format": FORMAT, "version": VERSION, "kind": "best", "model": spec,
            "generator": {k: torch.from_numpy(weights[k].copy()).reshape(v.shape) for k, v in state.items()},
            "recipe": {"id": manifest.recipe_id, "hash": manifest.recipe_hash,
                       "channel_names": list(manifest.channels)},
            "config": training.get("config", {}), "epoch": training.get("epoch", 0),
            "step": training.get("step", 0), "metrics": training.get("metrics", {})}


def _onnx_weights(graph: Any) -> dict[str, Any]:
    """Parameter name → array of an exported generator. The exporter merges identical tensors (e.g.
    zero biases) into one initialiser under one of their names; the others are found through the
    convolution that uses them (node ``/body/body.0/.../convs.1/Conv`` → ``body.0....convs.1``)."""
    from onnx import numpy_helper

    init = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    weights = dict(init)
    for node in graph.node:
        if node.op_type == "Conv":
            parts = node.name.strip("/").split("/")[:-1]
            path = ".".join(p for p, q in zip(parts, [*parts[1:], ""], strict=True) if not q.startswith(p + "."))
            for suffix, name in zip(("weight", "bias"), node.input[1:], strict=False):
                if name in init:
                    weights.setdefault(f"{path}.{suffix}", init[name])
    return weights


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
