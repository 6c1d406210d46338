"""CycleGAN generators for unpaired stain styles (seed 003, after Zhu et al. 2017).

Both map images in [0, 1] to images in [0, 1]: inside, the input is moved to [-1, 1] and the
output comes from a ``tanh`` moved back, the CycleGAN convention, so the exported ONNX takes the
generator's RGB output as it is.

* :class:`ResnetGenerator` — reflection-padded 7x7 conv, ``n_down`` stride-2 3x3 convs (features
  doubling), ``n_blocks`` two-conv residual blocks (6 for 128 px, 9 for 256 px in CycleGAN),
  ``n_down`` transposed convs, reflection-padded 7x7 conv, ``tanh``; instance norm + ReLU after
  every conv but the last.
* :class:`UNetStyleGenerator` — the seed's U-Net-like model: the same first layer, ``n_down``
  stride-2 encoder blocks (instance norm, LeakyReLU 0.2), a middle conv, and decoder blocks that
  concatenate the encoder output of the same level before each transposed conv, so fine structure
  (nuclear outlines) reaches the output directly.

With ``residual`` (RGB → RGB only) the network predicts a change instead of the image:
``y = clamp(x + ½·tanh(...), 0, 1)`` with the last conv zero-initialised, so training starts from
the identity — every nucleus in place — and the adversarial term only has to learn the colour
change. (Not in the seed; a stain change of the same cells is small next to the image.)

Instance norm uses each image's own statistics: a cell crop is styled from its own content. This
is what makes tiled whole-slide inference seam (seed 003 §3.4); for per-cell staining it is fine.
"""

from __future__ import annotations

import torch
from torch import nn


def _conv_in_relu(cin: int, cout: int, kernel: int, stride: int = 1, leaky: bool = False) -> list[nn.Module]:
    pad: list[nn.Module] = [nn.ReflectionPad2d(kernel // 2)] if stride == 1 else []
    conv = nn.Conv2d(cin, cout, kernel, stride=stride, padding=0 if stride == 1 else kernel // 2)
    act = nn.LeakyReLU(0.2, inplace=True) if leaky else nn.ReLU(inplace=True)
    return [*pad, conv, nn.InstanceNorm2d(cout), act]


def _up(cin: int, cout: int, leaky: bool = False) -> nn.Sequential:
    act = nn.LeakyReLU(0.2, inplace=True) if leaky else nn.ReLU(inplace=True)
    return nn.Sequential(nn.ConvTranspose2d(cin, cout, 3, stride=2, padding=1, output_padding=1),
                         nn.InstanceNorm2d(cout), act)


def _last(cin: int, cout: int, zero: bool = False) -> nn.Sequential:
    conv = nn.Conv2d(cin, cout, 7)
    if zero:
        with torch.no_grad():
            conv.weight.zero_()
            conv.bias.zero_()  # type: ignore[union-attr]  # Conv2d has a bias unless bias=False
    return nn.Sequential(nn.ReflectionPad2d(3), conv, nn.Tanh())


def _check_residual(residual: bool, cin: int, cout: int) -> None:
    if residual and cin != cout:
        raise ValueError(f"a residual style generator needs equal channel counts, found {cin} → {cout}")


def _image(x: torch.Tensor, h: torch.Tensor, residual: bool) -> torch.Tensor:
    """The output in [0, 1] from the tanh output ``h``: the image itself, or a change added to ``x``."""
    return (x + 0.5 * h).clamp(0.0, 1.0) if residual else 0.5 * (h + 1.0)


class ResidualBlock(nn.Module):
    """``x + F(x)``, ``F`` = reflection pad, 3x3 conv, instance norm, ReLU, reflection pad, 3x3 conv, instance norm."""

    def __init__(self, features: int) -> None:
        super().__init__()
        self.body = nn.Sequential(*_conv_in_relu(features, features, 3), nn.ReflectionPad2d(1),
                                  nn.Conv2d(features, features, 3), nn.InstanceNorm2d(features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ResnetGenerator(nn.Module):
    """``(B, in_channels, H, W) → (B, out_channels, H, W)`` in [0, 1]; ``H, W`` divisible by ``2**n_down``."""

    def __init__(self, in_channels: int = 3, out_channels: int = 3, features: int = 64, n_blocks: int = 9,
                 n_down: int = 2, residual: bool = False) -> None:
        super().__init__()
        _check_residual(residual, in_channels, out_channels)
        self.residual = residual
        layers: list[nn.Module] = _conv_in_relu(in_channels, features, 7)
        w = features
        for _ in range(n_down):
            layers += _conv_in_relu(w, 2 * w, 3, stride=2)
            w *= 2
        layers += [ResidualBlock(w) for _ in range(n_blocks)]
        for _ in range(n_down):
            layers.append(_up(w, w // 2))
            w //= 2
        layers.append(_last(w, out_channels, zero=residual))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _image(x, self.net(2.0 * x - 1.0), self.residual)


class UNetStyleGenerator(nn.Module):
    """The seed's U-Net-like CycleGAN generator; ``H, W`` divisible by ``2**n_down``."""

    def __init__(self, in_channels: int = 3, out_channels: int = 3, features: int = 64, n_down: int = 2,
                 residual: bool = False) -> None:
        super().__init__()
        _check_residual(residual, in_channels, out_channels)
        self.residual = residual
        self.first = nn.Sequential(*_conv_in_relu(in_channels, features, 7))
        widths = [features * 2**i for i in range(n_down + 1)]
        self.down = nn.ModuleList(nn.Sequential(*_conv_in_relu(widths[i], widths[i + 1], 3, stride=2, leaky=True))
                                  for i in range(n_down))
        self.middle = nn.Sequential(*_conv_in_relu(widths[-1], widths[-1], 3, leaky=True))
        self.up = nn.ModuleList(_up(2 * widths[i + 1], widths[i], leaky=True) for i in reversed(range(n_down)))
        self.last = _last(features, out_channels, zero=residual)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.first(2.0 * x - 1.0)
        skips = []
        for down in self.down:
            h = down(h)
            skips.append(h)
        h = self.middle(h)
        for up in self.up:
            h = up(torch.cat([skips.pop(), h], dim=1))
        return _image(x, self.last(h), self.residual)
