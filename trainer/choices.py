"""What the trainer's configs may name, torch-free: validating a config never imports torch.

The registries that map these names to code live beside the code (``trainer.models.GENERATORS``,
``trainer.losses.GAN_LOSSES``, ...); tests check that their keys are exactly these names.
"""

from __future__ import annotations

from dataclasses import dataclass

GENERATOR_NAMES: tuple[str, ...] = ("rrdb", "unet", "affine")
DISCRIMINATOR_NAMES: tuple[str, ...] = ("vgg", "patch")
STYLE_GENERATOR_NAMES: tuple[str, ...] = ("resnet", "unet", "affine")
GAN_LOSS_NAMES: tuple[str, ...] = ("rpgan", "lsgan", "vanilla")
#: Output heads of the generators.
OUTPUTS = ("sigmoid", "clamp")

VGG19_CFG: tuple[int | str, ...] = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M",
                                     512, 512, 512, 512, "M", 512, 512, 512, 512, "M")


def _layer_names() -> dict[str, int]:
    """Keras-style names (``block4_conv4``) → index of that conv in ``features``."""
    names: dict[str, int] = {}
    index, block, conv = 0, 1, 1
    for item in VGG19_CFG:
        if item == "M":
            block, conv = block + 1, 1
            index += 1
        else:
            names[f"block{block}_conv{conv}"] = index
            conv += 1
            index += 2
    return names


VGG19_LAYERS: dict[str, int] = _layer_names()


@dataclass(frozen=True)
class Preset:
    """Loss weights of a named model of the seed (Table 3.2); L1 weight is always 1."""

    perceptual: float
    fourier: float
    gan: float
    warm_start_required: bool = False


PRESETS: dict[str, Preset] = {
    "maeNET": Preset(0.0, 0.0, 0.0),
    "maePNET": Preset(0.0125, 0.0, 0.0),
    "maePFNET": Preset(0.0125, 0.0125, 0.0),
    "maePF-RpGAN-SN": Preset(0.0125, 0.0125, 0.005, warm_start_required=True),
}


@dataclass(frozen=True)
class Weights:
    """Effective weights of the generator objective ``l1·L1 + p·L_p + f·L_F + s·(1-SSIM) + g·L_G``."""

    l1: float = 1.0
    perceptual: float = 0.0
    fourier: float = 0.0
    ssim: float = 0.0
    gan: float = 0.0
