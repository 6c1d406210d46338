"""FLOP counting by forward hooks: multiply-accumulates of Conv2d / ConvTranspose2d / Linear layers.

Only these layers are counted (activations, norms and additions are < 1 % for our nets). One MAC is
two FLOPs; the seed's generator (n_b = 4, 64 features, growth 32, 44-image stack) comes out at
~25 GFLOP per 64x64 cell.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


def _macs(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> int:
    if isinstance(module, nn.Conv2d):
        k = module.kernel_size[0] * module.kernel_size[1] * (module.in_channels // module.groups)
        return int(output.numel() // output.shape[0]) * k
    if isinstance(module, nn.ConvTranspose2d):
        k = module.kernel_size[0] * module.kernel_size[1] * (module.out_channels // module.groups)
        return int(inputs[0].numel() // inputs[0].shape[0]) * k
    if isinstance(module, nn.Linear):
        return module.in_features * module.out_features
    return 0


def count_flops(model: nn.Module, input_shape: Sequence[int]) -> float:
    """GFLOP for one sample of ``input_shape`` ``(C, H, W)`` (2 × multiply-accumulates of conv/linear layers)."""
    total = [0]

    def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        total[0] += _macs(module, inputs, output)

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, nn.Conv2d | nn.ConvTranspose2d | nn.Linear)]
    was_training = model.training
    try:
        model.eval()
        param = next(model.parameters(), None)
        device = param.device if param is not None else torch.device("cpu")
        with torch.no_grad():
            model(torch.zeros(1, *input_shape, device=device))
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return 2.0 * total[0] / 1e9
