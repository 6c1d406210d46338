"""Small pieces shared by the generators: the output head and the scaled initialisation."""

from __future__ import annotations

import torch
from torch import nn

OUTPUTS = ("sigmoid", "clamp")

#: Generators take inputs in [0, 1] and subtract this first: centred inputs condition the first layer
#: far better (a 1x1 affine map reaches 4x lower error in the same number of Adam steps).
INPUT_CENTRE = 0.5


class OutputHead(nn.Module):
    """Maps raw RGB ``(B, 3, H, W)`` to [0, 1]: ``sigmoid`` (default) or ``clamp``."""

    def __init__(self, kind: str = "sigmoid") -> None:
        super().__init__()
        if kind not in OUTPUTS:
            raise ValueError(f"unknown output head {kind!r}; valid: {', '.join(OUTPUTS)}")
        self.kind = kind

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(x) if self.kind == "sigmoid" else x.clamp(0.0, 1.0)

    def extra_repr(self) -> str:
        return self.kind


def scaled_kaiming_(conv: nn.Conv2d, scale: float) -> None:
    """Kaiming-normal init multiplied by ``scale`` (ESRGAN uses 0.1 in residual blocks), zero bias."""
    nn.init.kaiming_normal_(conv.weight, a=0.0, mode="fan_in")
    with torch.no_grad():
        conv.weight.mul_(scale)
    if conv.bias is not None:
        nn.init.zeros_(conv.bias)
