"""Generators and discriminators, chosen by name from literal dicts.

``GENERATORS`` and ``DISCRIMINATORS`` are the registries of paired training; :func:`build_generator` and
:func:`build_discriminator` turn a :class:`trainer.config.NetworkConfig` into a module.
``STYLE_GENERATORS`` are the image-to-image generators of unpaired stain styles (CycleGAN,
:mod:`trainer.style`), built by :func:`trainer.style.models.build_style_generator`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from torch import nn

from trainer.models.cyclegan import ResnetGenerator, UNetStyleGenerator
from trainer.models.discriminators import PatchDiscriminator, VGGDiscriminator
from trainer.models.flops import count_flops
from trainer.models.rrdb import RRDBGenerator
from trainer.models.unet import AffineGenerator, UNetGenerator

if TYPE_CHECKING:
    from trainer.config import NetworkConfig

GENERATORS: dict[str, type[nn.Module]] = {"rrdb": RRDBGenerator, "unet": UNetGenerator, "affine": AffineGenerator}
DISCRIMINATORS: dict[str, type[nn.Module]] = {"vgg": VGGDiscriminator, "patch": PatchDiscriminator}
STYLE_GENERATORS: dict[str, type[nn.Module]] = {"resnet": ResnetGenerator, "unet": UNetStyleGenerator,
                                                "affine": AffineGenerator}


def _pick(registry: dict[str, type[nn.Module]], name: str, what: str) -> type[nn.Module]:
    try:
        return registry[name]
    except KeyError:
        raise ValueError(f"unknown {what} {name!r}; valid: {', '.join(registry)}") from None


def generator_kwargs(cfg: NetworkConfig) -> dict[str, Any]:
    """The constructor arguments (besides ``in_channels``) of ``cfg.generator``."""
    if cfg.generator == "rrdb":
        return {"n_blocks": cfg.n_blocks, "features": cfg.features, "growth": cfg.growth,
                "res_scale": cfg.res_scale, "output": cfg.output}
    if cfg.generator == "unet":
        return {"features": cfg.features, "depth": cfg.unet_depth, "reduce_to": cfg.unet_reduce, "output": cfg.output}
    return {"output": cfg.output}


def build_generator(cfg: NetworkConfig, in_channels: int) -> nn.Module:
    """A generator ``(B, in_channels, P, P) → (B, 3, P, P)`` as configured."""
    return _pick(GENERATORS, cfg.generator, "generator")(in_channels, **generator_kwargs(cfg))


def build_discriminator(cfg: NetworkConfig, patch_size: int) -> nn.Module:
    """A critic on RGB ``(B, 3, P, P)`` as configured (spectral norm per ``cfg.d_spectral``)."""
    cls = _pick(DISCRIMINATORS, cfg.discriminator, "discriminator")
    if cls is VGGDiscriminator:
        return VGGDiscriminator(3, patch_size, cfg.d_features, cfg.d_layers, spectral=cfg.d_spectral)
    return PatchDiscriminator(3, cfg.d_features, cfg.d_layers, spectral=cfg.d_spectral)


__all__ = ["DISCRIMINATORS", "GENERATORS", "STYLE_GENERATORS", "AffineGenerator", "PatchDiscriminator",
           "RRDBGenerator", "ResnetGenerator", "UNetGenerator", "UNetStyleGenerator",
           "VGGDiscriminator", "build_discriminator", "build_generator", "count_flops", "generator_kwargs"]
