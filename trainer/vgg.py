"""VGG19 feature stack for the perceptual loss, built here so torchvision's weights load into it.

The layer indices match ``torchvision.models.vgg19().features`` exactly (conv at 0, ReLU at 1, ...,
``block4_conv4`` = index 25), so a state dict saved with
``torch.save(torchvision.models.vgg19(weights="IMAGENET1K_V1").state_dict(), "vgg19.pth")`` on any
machine loads here (``features.*`` keys; ``classifier.*`` keys are ignored). No download ever happens.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from core.config import ConfigError
from trainer.choices import VGG19_CFG, VGG19_LAYERS

#: torchvision's configuration "E": channels per conv, "M" = max-pool.
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)





def vgg19_features(until: str = "block4_conv4") -> nn.Sequential:
    """``features[: index(until) + 1]`` of torchvision's VGG19: output is ``until`` *before* its ReLU."""
    if until not in VGG19_LAYERS:
        raise ConfigError(f"loss.vgg_layer = {until!r} is not a VGG19 conv; valid: {', '.join(VGG19_LAYERS)}")
    layers: list[nn.Module] = []
    prev = 3
    for item in VGG19_CFG:
        if item == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(prev, int(item), 3, padding=1), nn.ReLU(inplace=False)]
            prev = int(item)
    return nn.Sequential(*layers[: VGG19_LAYERS[until] + 1])


class VGGFeatures(nn.Module):
    """Frozen VGG19 features of an RGB image ``(B, 3, H, W)`` in [0, 1] (ImageNet-normalised inside)."""

    def __init__(self, weights: Path, layer: str = "block4_conv4") -> None:
        super().__init__()
        self.features = vgg19_features(layer)
        load_vgg19_weights(self.features, Path(weights))
        self.features.requires_grad_(False).eval()
        self.mean: torch.Tensor
        self.std: torch.Tensor
        self.register_buffer("mean", torch.tensor(_IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(_IMAGENET_STD).view(1, 3, 1, 1))

    def train(self, mode: bool = True) -> VGGFeatures:
        super().train(mode)
        self.features.eval()  # fixed loss network, never in training mode
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features((x - self.mean) / self.std)


def load_vgg19_weights(features: nn.Sequential, path: Path) -> None:
    """Load a torchvision-format VGG19 state dict (full model or ``features`` only) into ``features``."""
    if not path.is_file():
        raise ConfigError(f"loss.vgg_weights = {str(path)!r}: file not found; expected a torchvision VGG19 "
                          "state dict (.pth). Copy it there, or set loss.perceptual = 0 to train without it")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a corrupt file
        raise ConfigError(f"loss.vgg_weights = {str(path)!r} is not a readable torch state dict: {exc}") from exc
    if not isinstance(state, dict):
        raise ConfigError(f"loss.vgg_weights = {str(path)!r}: expected a state dict, found {type(state).__name__}")
    stripped = {k.removeprefix("features."): v for k, v in state.items() if not k.startswith("classifier.")}
    wanted = features.state_dict()
    missing = [k for k in wanted if k not in stripped]
    if missing:
        raise ConfigError(f"loss.vgg_weights = {str(path)!r} lacks VGG19 layers {missing[:4]}...; "
                          "expected torchvision's vgg19().state_dict() keys (features.N.weight)")
    try:
        features.load_state_dict({k: stripped[k] for k in wanted})
    except RuntimeError as exc:
        raise ConfigError(f"loss.vgg_weights = {str(path)!r} does not fit VGG19: {exc}") from exc
