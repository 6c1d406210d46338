"""Seed ensembles of the white-cell networks (torch; training and export only).

Several trained copies of one network (different seeds) as branches of one graph whose output is the
logit of their mean probability, so the ONNX export runs like a single model: the first stage's U-Net
(:class:`trainer.wbc.cnn_model.WbcCnn`, a heat map per pixel) and the verifier
(:class:`trainer.wbc.verify_model.WbcVerifier`, one logit per crop) alike. Members disagree mostly
on the confusers, so averaging their probabilities lowers those more than the cells.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import torch
from torch import nn

from trainer.errors import TrainerError


def logit_of_mean(logits: torch.Tensor) -> torch.Tensor:
    """The logit of the mean probability over the first axis of ``logits`` ``(k, ...)``."""
    p = torch.sigmoid(logits).mean(0).clamp(1e-6, 1 - 1e-6)
    return torch.log(p) - torch.log1p(-p)


def dihedral_views(x: torch.Tensor) -> list[torch.Tensor]:
    """The 8 flips and quarter turns of square crops ``(B, C, S, S)``: identity first."""
    views = [x, x.flip(3)]
    views += [v.flip(2) for v in views]
    return views + [v.transpose(2, 3) for v in views]


class WbcTta(nn.Module):
    """A crop classifier (logits ``(B,)`` of crops ``(B, C, S, S)``) seen through test-time augmentation:
    the logit of its mean probability over the 8 flips and quarter turns of each crop. A white cell has no
    orientation, and the verifier trained on turned and flipped crops, so the views should agree; where
    they do not, the mean is the steadier score. One graph, so ``--stage2`` runs it unchanged; 8x the cost."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        views = dihedral_views(x)
        logits = self.net(torch.cat(views)).reshape(len(views), x.shape[0])
        return logit_of_mean(logits)


class WbcEnsemble(nn.Module):
    """Members that map one input to logits of one shape, as branches of one graph: the logit of their
    mean probability (:func:`trainer.wbc.cnn_hard.mean_probability`), any output shape."""

    def __init__(self, members: Sequence[nn.Module]) -> None:
        super().__init__()
        if not members:
            raise ValueError("an ensemble needs at least one member; found none")
        self.members = nn.ModuleList(members)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return logit_of_mean(torch.stack([m(x) for m in self.members]))


def onnx_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The named weights (ONNX initializers) of a network exported from torch with its parameter names, as
    a state dict: for a shipped model that has no ``.pt`` next to it."""
    import onnx
    from onnx import numpy_helper

    return {t.name: torch.from_numpy(numpy_helper.to_array(t).copy()) for t in onnx.load(str(path)).graph.initializer}


class FromState(Protocol):
    """A network class that builds itself at the shape of a state dict (``WbcVerifier``, ``WbcCnn``)."""

    def from_state(self, state: dict[str, torch.Tensor]) -> nn.Module: ...


def load_member(path: Path, kind: FromState, trainer: str) -> nn.Module:
    """The ``kind`` network shaped for, and loaded with, the state dict at ``path`` (the ``.pt`` written by the
    module ``trainer`` next to its ONNX, or that ``.onnx`` itself when it is a single exported network), in eval
    mode."""
    if not path.is_file():
        raise TrainerError(f"ensemble member {path} not found; train it with python -m {trainer} "
                           "(it writes NAME.pt next to NAME.onnx)")
    try:
        state = (onnx_state_dict(path) if path.suffix == ".onnx"
                 else torch.load(path, map_location="cpu", weights_only=True))
        net = kind.from_state(state)
        net.load_state_dict(state)
    except (RuntimeError, KeyError) as exc:
        name = getattr(kind, "__name__", kind)
        raise TrainerError(f"{path}: expected a {name} state dict as {trainer} writes (or its "
                           f"single-network .onnx), found another ({exc})") from exc
    return net.eval()
