"""The white-cell verifier's network (torch; training and export only).

A small classifier of one candidate's crop (:mod:`trainer.wbc.verify`): input ``(B, 4,
CROP_PX, CROP_PX)`` = three channels of normalised density at 0.5 µm per pixel and the
illuminated-field mask; output one logit per crop ``(B,)`` (white cell or not). Four conv stages
(16, 24, 32, 48 channels; 2x pooling after the first three: 0.5, 1, 2, 4 µm per pixel), then the
mean and max over the central 20 µm of the last stage into a linear head: ~40 k weights. No
normalisation layers, so a crop's score does not depend on the batch it came in.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import onnx
import torch
from torch import nn
from torch.nn import functional as F

from trainer.wbc.verify import CROP_PX, VERIFY_UM

IN_CHANNELS = 4
#: Channels of the four stages as shipped.
WIDTHS = (16, 24, 32, 48)


def _conv(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU(inplace=True))


class WbcVerifier(nn.Module):
    """Logit ``(B,)`` that a crop ``(B, 4, CROP_PX, CROP_PX)`` is centred on a white cell."""

    def __init__(self, widths: tuple[int, int, int, int] = WIDTHS) -> None:
        super().__init__()
        a, b, c, d = widths
        self.s0 = nn.Sequential(_conv(IN_CHANNELS, a), _conv(a, a))
        self.s1 = _conv(a, b)
        self.s2 = _conv(b, c)
        self.s3 = nn.Sequential(_conv(c, d), _conv(d, d))
        self.head = nn.Linear(2 * d, 1)

    @classmethod
    def from_state(cls, state: dict[str, torch.Tensor]) -> WbcVerifier:
        """A verifier shaped for ``state`` (its stages' widths read from the first convolution of each)."""
        keys = ("s0.0.0.weight", "s1.0.weight", "s2.0.weight", "s3.0.0.weight")
        a, b, c, d = (int(state[k].shape[0]) for k in keys)
        return cls((a, b, c, d))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.max_pool2d(self.s0(x), 2)
        h = F.max_pool2d(self.s1(h), 2)
        h = F.max_pool2d(self.s2(h), 2)
        h = self.s3(h)  # (B, d, CROP_PX / 8, CROP_PX / 8) at 4 µm per pixel
        n, k = CROP_PX // 8, CROP_PX // 32
        centre = h[:, :, k:n - k, k:n - k]  # the central ~20 µm: the cell, not its neighbours
        pooled = torch.cat([centre.mean(dim=(2, 3)), centre.amax(dim=(2, 3))], dim=1)
        out: torch.Tensor = self.head(pooled)[:, 0]
        return out


def export_verifier(net: nn.Module, path: Path, weight: float, threshold: float, candidate_threshold: float,
                    notes: str = "") -> None:
    """Write ``net`` as ONNX (input ``crops`` (n, 4, CROP_PX, CROP_PX), any n; output ``logits`` (n,))
    with the combination ``weight``, the final ``threshold``, the first-stage ``candidate_threshold``,
    the crop geometry and ``notes`` in its metadata."""
    net = net.eval()
    dummy = torch.zeros(2, IN_CHANNELS, CROP_PX, CROP_PX)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the TorchScript exporter (as cnn_model)
        torch.onnx.export(net, (dummy,), str(path), dynamo=False, opset_version=17, input_names=["crops"],
                          output_names=["logits"], dynamic_axes={"crops": {0: "n"}, "logits": {0: "n"}})
    model = onnx.load(str(path))
    for key, value in (("weight", f"{weight:.4f}"), ("threshold", f"{threshold:.4f}"),
                       ("candidate_threshold", f"{candidate_threshold:.4f}"), ("crop_px", str(CROP_PX)),
                       ("verify_um", f"{VERIFY_UM}"), ("notes", notes)):
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(model, str(path))
