"""Small pieces shared by the generators: input standardisation, the output head, the scaled initialisation."""

from __future__ import annotations

import torch
from torch import nn

from trainer.choices import OUTPUTS

#: Default centre of the inputs (in [0, 1]) when no training-set statistics are set: centred inputs
#: condition the first layer far better (a 1x1 affine map reaches 4x lower error in the same steps).
INPUT_CENTRE = 0.5


class InputNorm(nn.Module):
    """Per-channel standardisation of the stack, ``(x - mean) * scale`` with ``scale = 1 / std``, the
    generators' first step (a multiply, so the fp16 export keeps it in half precision).

    The buffers start as the fixed centring (mean 0.5, scale 1, what checkpoints without them used);
    training sets them from the training split (:meth:`set_stats`). They travel in the checkpoint
    and the exported graph, so the device still feeds raw [0, 1] stacks. Why it matters: a stack's
    images are strongly correlated (14 near-identical brightfield images in ``le18``) and differ in
    level (darkfield near 0); standardised, the first layer trains 5-10x faster on such recipes.
    """

    mean: torch.Tensor
    scale: torch.Tensor

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.full((1, channels, 1, 1), INPUT_CENTRE))
        self.register_buffer("scale", torch.ones(1, channels, 1, 1))

    def set_stats(self, mean: torch.Tensor, std: torch.Tensor, min_std: float = 1e-3) -> None:
        with torch.no_grad():
            self.mean.copy_(mean.reshape(self.mean.shape))
            self.scale.copy_(1.0 / std.reshape(self.scale.shape).clamp_min(min_std))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) * self.scale


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
