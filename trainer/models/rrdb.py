"""ESRGAN-style RRDB generator without upsampling (seed 000, Fig. 3.7).

``conv_first → n_b × RRDB → trunk conv (+ global skip) → conv + LeakyReLU → conv → RGB``.
Each RRDB holds three residual dense blocks of five 3x3 convolutions with dense connections,
LeakyReLU(0.2) and residual scaling 0.2; the convolutions of the blocks start from a Kaiming
initialisation scaled by 0.1 (ESRGAN's "smaller initialisation").

The output head is ``sigmoid`` by default: it is smooth, bounded to [0, 1] like the targets, keeps
gradients for out-of-range pre-activations and exports to ONNX as one op. ``clamp`` (ESRGAN's
behaviour at inference) is available; it has zero gradient where it clips.
"""

from __future__ import annotations

import torch
from torch import nn

from trainer.models.common import InputNorm, OutputHead, scaled_kaiming_


class ResidualDenseBlock(nn.Module):
    """Five densely connected 3x3 convs: ``(B, F, H, W) → (B, F, H, W)``, output scaled by ``res_scale``."""

    def __init__(self, features: int, growth: int, res_scale: float = 0.2) -> None:
        super().__init__()
        convs = [nn.Conv2d(features + i * growth, growth if i < 4 else features, 3, padding=1) for i in range(5)]
        self.act = nn.LeakyReLU(0.2, inplace=True)
        self.res_scale = res_scale
        for conv in convs:
            scaled_kaiming_(conv, 0.1)
        self.convs = nn.ModuleList(convs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = [x]
        for conv in self.convs[:4]:
            feats.append(self.act(conv(torch.cat(feats, dim=1))))
        return x + self.res_scale * self.convs[4](torch.cat(feats, dim=1))


class RRDB(nn.Module):
    """Residual-in-residual dense block: three :class:`ResidualDenseBlock` and an outer scaled skip."""

    def __init__(self, features: int, growth: int, res_scale: float = 0.2) -> None:
        super().__init__()
        self.blocks = nn.Sequential(*(ResidualDenseBlock(features, growth, res_scale) for _ in range(3)))
        self.res_scale = res_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.res_scale * self.blocks(x)


class RRDBGenerator(nn.Module):
    """PLS stack ``(B, I·3, P, P)`` in [0, 1] → stained RGB ``(B, 3, P, P)`` in [0, 1]."""

    def __init__(self, in_channels: int, n_blocks: int = 4, features: int = 64, growth: int = 32,
                 res_scale: float = 0.2, output: str = "sigmoid") -> None:
        super().__init__()
        self.norm = InputNorm(in_channels)
        self.conv_first = nn.Conv2d(in_channels, features, 3, padding=1)
        self.body = nn.Sequential(*(RRDB(features, growth, res_scale) for _ in range(n_blocks)))
        self.conv_body = nn.Conv2d(features, features, 3, padding=1)
        self.conv_hr = nn.Conv2d(features, features, 3, padding=1)
        self.conv_last = nn.Conv2d(features, 3, 3, padding=1)
        self.act = nn.LeakyReLU(0.2, inplace=True)
        self.head = OutputHead(output)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feat = self.conv_first(self.norm(x))
        feat = feat + self.conv_body(self.body(feat))
        return self.head(self.conv_last(self.act(self.conv_hr(feat))))
