"""Discriminators (critics): the seed's spectrally normalised VGG-style net and a PatchGAN.

Both return the critic value *before* any activation, ``C(x)``; the GAN losses in
:mod:`trainer.losses` apply the relativistic / LSGAN / vanilla formulations on top.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

#: Normalisation layers of the PatchGAN, by name.
NORMS: dict[str, type[nn.Module]] = {"batch": nn.BatchNorm2d, "instance": nn.InstanceNorm2d}


def _sn(module: nn.Module, enabled: bool) -> nn.Module:
    return spectral_norm(module) if enabled else module


class VGGDiscriminator(nn.Module):
    """Seed 000 Fig. 3.8: ``blocks`` × (3x3 stride-1 conv, 4x4 stride-2 conv), filters doubling per block,
    flatten, two linear layers → one critic value.

    ``(B, 3, P, P) → (B, 1)``. With ``P = 64``, ``features = 16`` and 3 blocks the flattened vector has
    8·8·64 = 4096 entries, as in the seed.
    """

    def __init__(self, in_channels: int = 3, patch_size: int = 64, features: int = 16, blocks: int = 3,
                 hidden: int = 100, spectral: bool = True) -> None:
        super().__init__()
        if patch_size % 2**blocks:
            raise ValueError(f"VGG discriminator: patch size {patch_size} must be divisible by 2**blocks = {2**blocks}")
        layers: list[nn.Module] = []
        prev = in_channels
        for i in range(blocks):
            w = features * 2**i
            layers += [_sn(nn.Conv2d(prev, w, 3, 1, 1), spectral), nn.LeakyReLU(0.2, inplace=True),
                       _sn(nn.Conv2d(w, w, 4, 2, 1), spectral), nn.LeakyReLU(0.2, inplace=True)]
            prev = w
        self.features = nn.Sequential(*layers)
        flat = prev * (patch_size // 2**blocks) ** 2
        self.classifier = nn.Sequential(_sn(nn.Linear(flat, hidden), spectral), nn.LeakyReLU(0.2, inplace=True),
                                        _sn(nn.Linear(hidden, 1), spectral))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.features(x), 1))


class PatchDiscriminator(nn.Module):
    """PatchGAN (pix2pix / CycleGAN): a fully convolutional critic, one value per receptive-field patch.

    ``(B, 3, H, W) → (B, 1, h, w)``; ``layers = 3`` gives 70x70 receptive fields (a 6x6 map for 64x64 input).
    ``norm``: ``batch`` (pix2pix) or ``instance`` (CycleGAN: each image its own statistics).
    """

    def __init__(self, in_channels: int = 3, features: int = 64, layers: int = 3, spectral: bool = True,
                 norm: str = "batch") -> None:
        super().__init__()
        if norm not in NORMS:
            raise ValueError(f"unknown discriminator norm {norm!r}; valid: {', '.join(NORMS)}")
        seq: list[nn.Module] = [_sn(nn.Conv2d(in_channels, features, 4, 2, 1), spectral), nn.LeakyReLU(0.2, True)]
        prev = features
        for i in range(1, layers + 1):
            w = features * min(2**i, 8)
            stride = 2 if i < layers else 1
            seq += [_sn(nn.Conv2d(prev, w, 4, stride, 1, bias=False), spectral), NORMS[norm](w),
                    nn.LeakyReLU(0.2, True)]
            prev = w
        seq.append(_sn(nn.Conv2d(prev, 1, 4, 1, 1), spectral))
        self.net = nn.Sequential(*seq)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
