"""The config of ``stainless-train fit-style``: one frozen dataclass per TOML section.

```toml
[data]                      # required: a, b
a = "data/style/mgg"        # domain A: images of the source look (a paired model's outputs, or style A)
b = "data/style/wg"         # domain B: stained cell images of the target style
a_channels = 3              # N-channel A (e.g. 2: confocal reflectance + fluorescence as .npy)
patch_size = 64
[model]
generator = "resnet"        # resnet | unet | affine
features = 16               # CycleGAN: 64
n_blocks = 6                # residual blocks (resnet): 6 or 9 in CycleGAN
n_down = 2                  # stride-2 levels
residual = false            # resnet / unet: predict a change added to the input (starts as the identity)
d_features = 16             # PatchGAN: 64
d_layers = 3                # the seed's 3-layer PatchGAN
affine_init = "identity"    # affine: identity | pseudo-colour | random
pseudo_colours = []         # affine, pseudo-colour: one RGB triple per input channel ([] = Gareau 2009)
[loss]
gan_type = "lsgan"          # lsgan | vanilla
cycle = 10.0
identity = 5.0
[optim]
lr = 2e-4
betas = [0.5, 0.9]          # the seed's Table 2
batch_size = 4
pool_size = 50
decay_epochs = 0            # linear decay to 0 over the last N epochs (0 = the second half)
[train]
out = "runs/style"
style = "wright-giemsa"     # the stain's name in the bundle: payload "stained:<style>"
epochs = 10
steps_per_epoch = 50
```

Unknown keys and bad values raise :class:`~trainer.errors.ConfigError` naming ``section.key``.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from core.config import ConfigError, build_sections, read_toml, require
from trainer.choices import GAN_LOSS_NAMES, STYLE_GENERATOR_NAMES

#: Style names as they appear in bundles and on the wire (``stained:<style>``).
STYLE_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,31}")
STYLE_GAN_TYPES = ("lsgan", "vanilla")
AFFINE_INITS = ("identity", "pseudo-colour", "random")


def _choice(key: str, value: str, valid: Any) -> None:
    require(value in valid, key, f"one of {', '.join(valid)}", value)


@dataclass(frozen=True)
class StyleDataConfig:
    a: str
    b: str
    a_channels: int = 3
    patch_size: int = 64
    val_fraction: float = 0.1

    def __post_init__(self) -> None:
        require(bool(self.a) and bool(self.b), "data.a/b", "two image folders", (self.a, self.b))
        require(1 <= self.a_channels <= 64, "data.a_channels", "1 .. 64", self.a_channels)
        require(self.patch_size >= 16 and self.patch_size % 8 == 0, "data.patch_size", "a multiple of 8, >= 16",
                self.patch_size)
        require(0.0 <= self.val_fraction < 0.5, "data.val_fraction", "in [0, 0.5)", self.val_fraction)


@dataclass(frozen=True)
class StyleModelConfig:
    generator: str = "resnet"
    features: int = 16
    n_blocks: int = 6
    n_down: int = 2
    d_features: int = 16
    d_layers: int = 3
    residual: bool = False  # resnet / unet, RGB → RGB: learn a change added to the input, starting at identity
    affine_init: str = "identity"
    pseudo_colours: tuple[tuple[float, float, float], ...] = ()

    def __post_init__(self) -> None:
        _choice("model.generator", self.generator, STYLE_GENERATOR_NAMES)
        _choice("model.affine_init", self.affine_init, AFFINE_INITS)
        for key, lo in (("features", 1), ("n_blocks", 0), ("n_down", 0), ("d_features", 1), ("d_layers", 1)):
            require(getattr(self, key) >= lo, f"model.{key}", f">= {lo}", getattr(self, key))
        require(self.n_down <= 4, "model.n_down", "<= 4", self.n_down)
        require(all(0.0 <= v <= 1.0 for c in self.pseudo_colours for v in c), "model.pseudo_colours",
                "RGB triples in [0, 1]", self.pseudo_colours)


@dataclass(frozen=True)
class StyleLossConfig:
    gan_type: str = "lsgan"
    gan: float = 1.0
    cycle: float = 10.0
    identity: float = 5.0

    def __post_init__(self) -> None:
        _choice("loss.gan_type", self.gan_type, [g for g in STYLE_GAN_TYPES if g in GAN_LOSS_NAMES])
        for key in ("gan", "cycle", "identity"):
            require(getattr(self, key) >= 0.0, f"loss.{key}", ">= 0", getattr(self, key))


@dataclass(frozen=True)
class StyleOptimConfig:
    lr: float = 2e-4
    betas: tuple[float, float] = (0.5, 0.9)
    batch_size: int = 4
    pool_size: int = 50
    decay_epochs: int = 0

    def __post_init__(self) -> None:
        require(self.lr > 0, "optim.lr", "> 0", self.lr)
        require(all(0.0 <= b < 1.0 for b in self.betas), "optim.betas", "two values in [0, 1)", self.betas)
        require(self.batch_size >= 1, "optim.batch_size", ">= 1", self.batch_size)
        require(self.pool_size >= 0 and self.decay_epochs >= 0, "optim.pool_size/decay_epochs", ">= 0",
                (self.pool_size, self.decay_epochs))


@dataclass(frozen=True)
class StyleTrainConfig:
    out: str = "runs/style"
    style: str = "style"
    epochs: int = 10
    steps_per_epoch: int = 50
    seed: int = 0
    log_every_steps: int = 10

    def __post_init__(self) -> None:
        require(STYLE_NAME.fullmatch(self.style) is not None, "train.style", "a name of [a-z0-9._-], <= 32 chars",
                self.style)
        for key in ("epochs", "steps_per_epoch", "log_every_steps"):
            require(getattr(self, key) >= 1, f"train.{key}", ">= 1", getattr(self, key))
        require(self.seed >= 0, "train.seed", ">= 0", self.seed)


@dataclass(frozen=True)
class StyleConfig:
    """The whole config of one ``stainless-train fit-style`` run."""

    data: StyleDataConfig
    model: StyleModelConfig = field(default_factory=StyleModelConfig)
    loss: StyleLossConfig = field(default_factory=StyleLossConfig)
    optim: StyleOptimConfig = field(default_factory=StyleOptimConfig)
    train: StyleTrainConfig = field(default_factory=StyleTrainConfig)

    def __post_init__(self) -> None:
        if self.loss.identity and self.data.a_channels != 3:
            raise ConfigError(f"loss.identity: the identity term needs 3-channel A images like B, found "
                              f"data.a_channels = {self.data.a_channels}; set loss.identity = 0 (or feed A through "
                              "a pseudo-colour transform first, as the seed did)")
        if self.model.residual and self.data.a_channels != 3:
            raise ConfigError(f"model.residual: a residual generator maps RGB to RGB, found data.a_channels = "
                              f"{self.data.a_channels}; set model.residual = false")
        if self.model.generator == "affine" and self.model.affine_init == "identity" and self.data.a_channels != 3:
            raise ConfigError(f"model.affine_init: 'identity' needs 3-channel A images, found data.a_channels = "
                              f"{self.data.a_channels}; use 'pseudo-colour' (or 'random')")
        if self.model.affine_init == "pseudo-colour" and self.model.pseudo_colours:
            require(len(self.model.pseudo_colours) == self.data.a_channels, "model.pseudo_colours",
                    f"{self.data.a_channels} RGB triples (one per A channel)", self.model.pseudo_colours)
        if self.optim.decay_epochs > self.train.epochs:
            raise ConfigError(f"optim.decay_epochs: expected <= train.epochs ({self.train.epochs}), "
                              f"found {self.optim.decay_epochs}")
        d_min = 4 * 2**self.model.d_layers  # the PatchGAN's last two layers need a map of >= 4x4
        require(self.data.patch_size >= d_min, "data.patch_size", f">= {d_min} for a {self.model.d_layers}-layer "
                "PatchGAN (or fewer model.d_layers)", self.data.patch_size)
        patch_ok = self.model.generator == "affine" or self.data.patch_size % 2**self.model.n_down == 0
        require(patch_ok, "data.patch_size", f"divisible by 2**model.n_down = {2**self.model.n_down}",
                self.data.patch_size)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StyleConfig:
        if "data" not in data:
            raise ConfigError("[data] section missing; it needs data.a and data.b (image folders)")
        return cls(**build_sections(data, _SECTIONS))


_SECTIONS: dict[str, type] = {"data": StyleDataConfig, "model": StyleModelConfig, "loss": StyleLossConfig,
                              "optim": StyleOptimConfig, "train": StyleTrainConfig}


def load_style_config(path: Path) -> StyleConfig:
    """Read and validate a ``fit-style`` TOML file."""
    return StyleConfig.from_dict(read_toml(path))
