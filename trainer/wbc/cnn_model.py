"""The convolutional white-cell finder's network (torch; training and export only).

A 3-level U-Net on the normalised density at 1 µm per pixel (:mod:`trainer.wbc.density`):
input ``(B, 4, h, w)`` = the three channels' density and the illuminated-field mask, ``h`` and
``w`` multiples of ``STRIDE``; output centre logits ``(B, 1, h, w)``. Levels at 1, 2 and 4 µm per
pixel (16, 32, 48 channels), additive skips, no normalisation layers (the output at a pixel does
not depend on the rest of the image, so tiles and whole fields agree); receptive field ~38 µm
(a white cell with its neighbours), ~64 k weights. Run time uses the ONNX export
(:func:`export_onnx`) through ONNX Runtime (:mod:`trainer.wbc.cnn`), not torch.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import onnx
import torch
from torch import nn
from torch.nn import functional as F

STRIDE = 4  # the input's sides must be multiples of this (two 2x poolings)
IN_CHANNELS = 4


def _block(cin: int, cout: int, n: int = 2) -> nn.Sequential:
    layers: list[nn.Module] = []
    for k in range(n):
        layers += [nn.Conv2d(cin if k == 0 else cout, cout, 3, padding=1), nn.ReLU(inplace=True)]
    return nn.Sequential(*layers)


class WbcCnn(nn.Module):
    """Centre logits ``(B, 1, h, w)`` of density + field ``(B, 4, h, w)``."""

    def __init__(self, widths: tuple[int, int, int] = (16, 32, 48)) -> None:
        super().__init__()
        a, b, c = widths
        self.enc0 = _block(IN_CHANNELS, a)
        self.enc1 = _block(a, b)
        self.enc2 = _block(b, c)
        self.up1 = nn.Conv2d(c, b, 1)
        self.dec1 = _block(b, b, 1)
        self.up0 = nn.Conv2d(b, a, 1)
        self.dec0 = _block(a, a, 1)
        self.head = nn.Conv2d(a, 1, 1)

    @classmethod
    def from_state(cls, state: dict[str, torch.Tensor]) -> WbcCnn:
        """A U-Net shaped for ``state`` (its levels' widths read from each encoder's first convolution)."""
        a, b, c = (int(state[f"enc{k}.0.weight"].shape[0]) for k in range(3))
        return cls((a, b, c))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e0 = self.enc0(x)
        e1 = self.enc1(F.max_pool2d(e0, 2))
        e2 = self.enc2(F.max_pool2d(e1, 2))
        d1 = self.dec1(e1 + F.interpolate(self.up1(e2), scale_factor=2.0, mode="nearest"))
        d0 = self.dec0(e0 + F.interpolate(self.up0(d1), scale_factor=2.0, mode="nearest"))
        out: torch.Tensor = self.head(d0)
        return out


def export_onnx(net: nn.Module, path: Path, threshold: float, notes: str = "", alpha: float = 0.0) -> None:
    """Write ``net`` as ONNX (input ``density`` (1, 4, h, w), any h, w multiple of ``STRIDE``;
    output ``logits``) with the detection ``threshold``, the relative threshold's ``alpha`` (0 = none;
    :func:`trainer.wbc.cnn_hard.set_reference`) and ``notes`` in the model's metadata."""
    net = net.eval()
    dummy = torch.zeros(1, IN_CHANNELS, 64, 64)
    axes = {"density": {2: "h", 3: "w"}, "logits": {2: "h", 3: "w"}}
    with warnings.catch_warnings():
        # the TorchScript exporter is deprecated in favour of the dynamo one, which needs onnxscript (not a
        # dependency); for plain conv nets both write the same graph
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(net, (dummy,), str(path), dynamo=False, opset_version=17, input_names=["density"],
                          output_names=["logits"], dynamic_axes=axes)
    model = onnx.load(str(path))
    for key, value in (("threshold", f"{threshold:.4f}"), ("stride", str(STRIDE)), ("notes", notes),
                       ("relative_alpha", f"{alpha:.4f}")):
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(model, str(path))
