"""pix2pix-style U-Net generator and the 1x1-conv affine baseline.

The U-Net first reduces the wide PLS stack with a 1x1 convolution (a 132-channel input would
otherwise make every encoder level huge, the reason the seed preferred RRDB), then runs ``depth``
stride-2 4x4 encoder convs (BatchNorm, LeakyReLU 0.2) and mirrored transposed-conv decoders (BatchNorm,
ReLU) with skip connections. BatchNorm rather than InstanceNorm: per-tile instance statistics cause
seams in tiled inference (seed 003).
"""

from __future__ import annotations

import torch
from torch import nn

from trainer.models.common import InputNorm, OutputHead


class UNetGenerator(nn.Module):
    """``(B, in_channels, P, P) → (B, 3, P, P)``; ``P`` must be divisible by ``2**depth``."""

    def __init__(self, in_channels: int, features: int = 64, depth: int = 4, reduce_to: int = 32,
                 output: str = "sigmoid") -> None:
        super().__init__()
        self.depth = depth
        self.norm = InputNorm(in_channels)
        self.reduce = nn.Sequential(nn.Conv2d(in_channels, reduce_to, 1), nn.LeakyReLU(0.2, inplace=True))
        widths = [min(features * 2**i, features * 8) for i in range(depth)]
        self.down = nn.ModuleList()
        prev = reduce_to
        for i, w in enumerate(widths):
            layers: list[nn.Module] = [nn.Conv2d(prev, w, 4, stride=2, padding=1, bias=i == 0)]
            if 0 < i < depth - 1:
                layers.append(nn.BatchNorm2d(w))
            layers.append(nn.LeakyReLU(0.2, inplace=True))
            self.down.append(nn.Sequential(*layers))
            prev = w
        self.up = nn.ModuleList()
        for i in reversed(range(depth)):
            in_w = widths[i] if i == depth - 1 else 2 * widths[i]
            out_w = widths[i - 1] if i > 0 else features
            self.up.append(nn.Sequential(nn.ConvTranspose2d(in_w, out_w, 4, stride=2, padding=1, bias=False),
                                         nn.BatchNorm2d(out_w), nn.ReLU(inplace=True)))
        self.last = nn.Conv2d(features + reduce_to, 3, 3, padding=1)
        self.head = OutputHead(output)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x0 = self.reduce(self.norm(x))
        skips = []
        h = x0
        for down in self.down:
            h = down(h)
            skips.append(h)
        skips.pop()
        for up in self.up:
            h = up(h)
            if skips:
                h = torch.cat([h, skips.pop()], dim=1)
        return self.head(self.last(torch.cat([h, x0], dim=1)))


#: Seed 003 eq. 1.2 (Gareau 2009): the fixed pseudo-colour transform of a confocal pair,
#: ``RGB = 1 - R·(1 - E) - F·(1 - H)``; colours per input channel (reflectance → eosin E,
#: fluorescence → haematoxylin H).
GAREAU_2009: tuple[tuple[float, float, float], ...] = ((1.0, 0.55, 0.88), (0.30, 0.20, 1.0))


def pseudo_colour_map(colours: tuple[tuple[float, ...], ...]) -> tuple[torch.Tensor, torch.Tensor]:
    """``(W, b)`` of the pseudo-colour transform ``y = 1 - Σ_i x_i (1 - colour_i)``: ``W`` ``(3, N)``,
    ``b`` ``(3,)``."""
    c = torch.tensor(colours, dtype=torch.float32)
    if c.ndim != 2 or c.shape[1] != 3:
        raise ValueError(f"pseudo-colours: expected one RGB triple per input channel, found shape {tuple(c.shape)}")
    return -(1.0 - c).T.contiguous(), torch.ones(3)


class AffineGenerator(nn.Module):
    """The simplest stain: one 1x1 conv (a per-pixel affine colour map) then the output head.

    ``(B, in_channels, H, W) → (B, out_channels, H, W)``; any ``N`` input channels (a PLS stack, a
    confocal reflectance + fluorescence pair, an RGB image for a style). :meth:`init_map` starts it
    from a fixed transform (the seed's pseudo-colour baseline, or the identity for a style).
    """

    def __init__(self, in_channels: int, output: str = "sigmoid", out_channels: int = 3) -> None:
        super().__init__()
        self.norm = InputNorm(in_channels)
        self.conv = nn.Conv2d(in_channels, out_channels, 1)
        self.head = OutputHead(output)

    def init_map(self, weight: torch.Tensor, bias: torch.Tensor) -> None:
        """Set the conv so that the map before the head is ``x ↦ weight @ x + bias`` for raw inputs ``x``
        (the input standardisation is folded in); exact end to end with the ``clamp`` head."""
        out_c, in_c = self.conv.weight.shape[:2]
        if tuple(weight.shape) != (out_c, in_c) or tuple(bias.shape) != (out_c,):
            raise ValueError(f"affine init: expected weight ({out_c}, {in_c}) and bias ({out_c},), found "
                             f"{tuple(weight.shape)} and {tuple(bias.shape)}")
        scale, mean = self.norm.scale.reshape(-1), self.norm.mean.reshape(-1)
        with torch.no_grad():
            self.conv.weight.copy_((weight / scale).reshape(out_c, in_c, 1, 1))
            self.conv.bias.copy_(bias + weight @ mean)  # type: ignore[union-attr]  # built with a bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.conv(self.norm(x)))
