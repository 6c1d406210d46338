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


class AffineGenerator(nn.Module):
    """The simplest stain: one 1x1 conv (a per-pixel affine colour map) then the output head."""

    def __init__(self, in_channels: int, output: str = "sigmoid") -> None:
        super().__init__()
        self.norm = InputNorm(in_channels)
        self.conv = nn.Conv2d(in_channels, 3, 1)
        self.head = OutputHead(output)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.conv(self.norm(x)))
