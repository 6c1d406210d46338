"""The training config: one frozen dataclass per component, loaded from a TOML file.

```toml
[data]                      # required: path
path = "out/synth.zarr"
recipe = "full-nohe"        # a sub-recipe of the captured one; "" = as captured
use_hr_target = false
[model]                     # generator: rrdb | unet | affine; discriminator: vgg | patch
generator = "rrdb"
n_blocks = 2
[loss]                      # preset: maeNET | maePNET | maePFNET | maePF-RpGAN-SN; weights override it
preset = "maePFNET"
vgg_weights = ""            # torchvision VGG19 state dict; "" = perceptual term off
[optim]
batch_size = 20
[train]
out = "runs/example"
epochs = 50
```

Unknown keys, wrong types and out-of-range values raise :class:`ConfigError` naming ``section.key``.
Relative paths are relative to the working directory.
"""

from __future__ import annotations

import logging
import typing
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from core.config import ConfigError, build_sections, read_toml
from core.config import require as _require
from trainer.choices import (
    DISCRIMINATOR_NAMES,
    GAN_LOSS_NAMES,
    GENERATOR_NAMES,
    OUTPUTS,
    PRESETS,
    VGG19_LAYERS,
    Weights,
)

log = logging.getLogger(__name__)


def _choice(key: str, value: str, valid: typing.Iterable[str]) -> None:
    valid = list(valid)
    _require(value in valid, key, f"one of {', '.join(valid)}", value)


@dataclass(frozen=True)
class DataConfig:
    path: str
    recipe: str = ""
    use_hr_target: bool = False
    workers: int = 0
    cache: bool = False

    def __post_init__(self) -> None:
        _require(bool(self.path), "data.path", "a dataset path", self.path)
        _require(self.workers >= 0, "data.workers", ">= 0", self.workers)


@dataclass(frozen=True)
class NetworkConfig:
    generator: str = "rrdb"
    n_blocks: int = 2
    features: int = 32
    growth: int = 16
    res_scale: float = 0.2
    output: str = "sigmoid"
    normalize_inputs: bool = True  # standardise each input channel by the training split's mean and std
    unet_depth: int = 4
    unet_reduce: int = 32
    discriminator: str = "vgg"
    d_features: int = 16
    d_layers: int = 3
    d_spectral: bool = True

    def __post_init__(self) -> None:
        _choice("model.generator", self.generator, GENERATOR_NAMES)
        _choice("model.discriminator", self.discriminator, DISCRIMINATOR_NAMES)
        _choice("model.output", self.output, OUTPUTS)
        for key in ("n_blocks", "features", "growth", "unet_depth", "unet_reduce", "d_features", "d_layers"):
            lo = 0 if key == "n_blocks" else 1
            _require(getattr(self, key) >= lo, f"model.{key}", f">= {lo}", getattr(self, key))
        _require(0.0 < self.res_scale <= 1.0, "model.res_scale", "in (0, 1]", self.res_scale)


@dataclass(frozen=True)
class LossConfig:
    preset: str = "maePFNET"
    l1: float = 1.0
    perceptual: float | None = None  # None: the preset's weight
    fourier: float | None = None
    gan: float | None = None
    ssim: float = 0.0
    gan_type: str = "rpgan"
    vgg_weights: str = ""
    vgg_layer: str = "block4_conv4"
    teacher: str = ""  # checkpoint of a trained generator to distil from ("" = no distillation)
    distill: float = 1.0  # weight of L1(student, teacher) when a teacher is set

    def __post_init__(self) -> None:
        _choice("loss.preset", self.preset, PRESETS)
        _choice("loss.gan_type", self.gan_type, GAN_LOSS_NAMES)
        _choice("loss.vgg_layer", self.vgg_layer, VGG19_LAYERS)
        for key in ("l1", "perceptual", "fourier", "gan", "ssim", "distill"):
            v = getattr(self, key)
            _require(v is None or v >= 0.0, f"loss.{key}", ">= 0", v)

    def weights(self) -> Weights:
        """Effective weights: the preset, overridden by explicit keys; perceptual off without VGG weights."""
        p = PRESETS[self.preset]
        perceptual = p.perceptual if self.perceptual is None else self.perceptual
        if perceptual and not self.vgg_weights:
            log.warning("loss: perceptual weight %g needs loss.vgg_weights (a torchvision VGG19 state dict); "
                        "training without the perceptual term", perceptual)
            perceptual = 0.0
        return Weights(l1=self.l1, perceptual=perceptual, fourier=p.fourier if self.fourier is None else self.fourier,
                       ssim=self.ssim, gan=p.gan if self.gan is None else self.gan)


@dataclass(frozen=True)
class OptimConfig:
    lr_g: float = 2e-4
    lr_d: float = 4e-4
    betas: tuple[float, float] = (0.5, 0.9)
    batch_size: int = 20
    weight_decay: float = 0.0
    scheduler: str = "constant"  # constant | cosine (per epoch, over train.epochs)
    grad_clip: float = 0.0  # max gradient norm; 0 = off

    def __post_init__(self) -> None:
        _require(self.lr_g > 0 and self.lr_d > 0, "optim.lr_g/lr_d", "> 0", (self.lr_g, self.lr_d))
        _require(all(0.0 <= b < 1.0 for b in self.betas), "optim.betas", "two values in [0, 1)", self.betas)
        _require(self.batch_size >= 1, "optim.batch_size", ">= 1", self.batch_size)
        _require(self.weight_decay >= 0 and self.grad_clip >= 0, "optim.weight_decay/grad_clip", ">= 0",
                 (self.weight_decay, self.grad_clip))
        _choice("optim.scheduler", self.scheduler, ("constant", "cosine"))


@dataclass(frozen=True)
class TrainConfig:
    out: str = "runs/default"
    epochs: int = 100
    patience: int = 10  # epochs without val improvement before stopping; 0 = never stop early
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda
    amp: bool = True  # fp16 AMP with a grad scaler, only ever used on CUDA (and only with precision = "fp32")
    #: "bf16": the forward pass under torch autocast bf16 (CPU with AMX / AVX-512 BF16, or CUDA); "fp32": none.
    precision: str = "fp32"
    checkpoint_every_steps: int = 0  # also save last.pt mid-epoch; 0 = at epoch ends only
    log_every_steps: int = 10
    warm_start: str = ""  # generator checkpoint to start from (required by the GAN preset)
    max_steps_per_epoch: int = 0  # 0 = the whole training split

    def __post_init__(self) -> None:
        _require(self.epochs >= 1, "train.epochs", ">= 1", self.epochs)
        for key in ("patience", "checkpoint_every_steps", "max_steps_per_epoch", "seed"):
            _require(getattr(self, key) >= 0, f"train.{key}", ">= 0", getattr(self, key))
        _require(self.log_every_steps >= 1, "train.log_every_steps", ">= 1", self.log_every_steps)
        _choice("train.device", self.device, ("auto", "cpu", "cuda"))
        _choice("train.precision", self.precision, ("fp32", "bf16"))


@dataclass(frozen=True)
class FitConfig:
    """The whole config of one ``stainless-train fit`` run."""

    data: DataConfig
    model: NetworkConfig = field(default_factory=NetworkConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def __post_init__(self) -> None:
        if PRESETS[self.loss.preset].warm_start_required and not self.train.warm_start:
            raise ConfigError(f"train.warm_start: preset {self.loss.preset!r} starts from a trained generator; "
                              "set it to a checkpoint of a maePFNET run (e.g. runs/x/best.pt)")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FitConfig:
        if "data" not in data:
            raise ConfigError("[data] section missing; it needs at least data.path")
        return cls(**build_sections(data, _SECTIONS))

    def with_overrides(self, **sections: dict[str, Any]) -> FitConfig:
        """A copy with some keys replaced, e.g. ``cfg.with_overrides(train={"epochs": 2})`` (validated)."""
        merged = self.to_dict()
        for name, values in sections.items():
            merged.setdefault(name, {}).update(values)
        return FitConfig.from_dict(merged)


_SECTIONS: dict[str, type] = {"data": DataConfig, "model": NetworkConfig, "loss": LossConfig,
                              "optim": OptimConfig, "train": TrainConfig}


def load_config(path: Path) -> FitConfig:
    """Read and validate a TOML config file."""
    return FitConfig.from_dict(read_toml(path))


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, list | tuple):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'


def to_toml(cfg: Any) -> str:
    """A config (:class:`FitConfig` or any dataclass config with ``to_dict``) as TOML (keys whose value
    is ``None`` = "from the preset" are left out)."""
    lines: list[str] = []
    for section, values in cfg.to_dict().items():
        lines.append(f"[{section}]")
        lines += [f"{k} = {_toml_value(v)}" for k, v in values.items() if v is not None]
        lines.append("")
    return "\n".join(lines)


def resolved(cfg: FitConfig) -> FitConfig:
    """The config with the loss weights the run actually uses written out (no ``None`` left)."""
    w = cfg.loss.weights()
    loss = replace(cfg.loss, l1=w.l1, perceptual=w.perceptual, fourier=w.fourier, gan=w.gan, ssim=w.ssim)
    return replace(cfg, loss=loss)
