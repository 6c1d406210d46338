"""Despeckling networks and noise models (seed 003, §3.2), trained on simulator pairs of darkfield frames.

**Networks** (:class:`DespeckleNet`): a convolutional body of M layers (K filters of N×N, batch norm,
PReLU) and a 1x1 convolution back to one channel, joined to the input by a skip connection:

* ``log-add`` — the body works on ``log(x + ε)`` and its output is added, then ``exp`` (turns
  multiplicative noise into additive noise; the seed's best);
* ``multiply`` — ``x · f(x)``: the body predicts the inverse of the noise;
* ``divide`` — ``x / (f(x) + ε)``: the body predicts the noise (the seed found it unstable).

Each acts on one image plane ``(B, 1, H, W)``; :class:`DenoiseStage` applies it to chosen planes of
a PLS stack ``(B, I·C, H, W)`` and passes the others through, so ``nn.Sequential(stage, generator)``
is a generator with a denoising front (and exports to ONNX as one graph).

**Noise models** (:func:`speckle`): multiplicative, mean 1 — gamma with L looks (variance 1/L),
uniform on [0.6535, 1.3464] (MATLAB ``imnoise``'s bounds, variance 0.04), Rayleigh with
σ = √(2/π). The darkfield frames here are limited by the camera, not by speckle: ``camera`` noise
is the simulator's Poisson–Gaussian sensor (:mod:`sim.camera`) at a shorter exposure, gained back
(:func:`render_pairs`).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from torch import nn

log = logging.getLogger(__name__)

SKIPS = ("log-add", "multiply", "divide")
NOISES = ("camera", "gamma", "uniform", "rayleigh")
LOG_EPS = 1e-5
DIV_EPS = 1e-8
UNIFORM_BOUNDS = (0.6535, 1.3464)


class DespeckleNet(nn.Module):
    """One plane ``(B, 1, H, W)`` in [0, 1] → denoised ``(B, 1, H, W)``; ``skip`` in :data:`SKIPS`."""

    def __init__(self, skip: str = "log-add", layers: int = 3, features: int = 32, kernel: int = 5) -> None:
        super().__init__()
        if skip not in SKIPS:
            raise ValueError(f"unknown skip connection {skip!r}; valid: {', '.join(SKIPS)}")
        if layers < 1 or features < 1 or kernel < 1 or kernel % 2 == 0:
            raise ValueError(f"layers {layers}, features {features}, kernel {kernel}: need >= 1 and an odd kernel")
        body: list[nn.Module] = []
        for i in range(layers):
            body += [nn.Conv2d(1 if i == 0 else features, features, kernel, padding=kernel // 2),
                     nn.BatchNorm2d(features), nn.PReLU()]
        last = nn.Conv2d(features, 1, 1)
        if skip != "log-add":  # start at the identity: f(x) = 1 for multiply / divide
            with torch.no_grad():
                last.weight.zero_()
                last.bias.fill_(1.0)  # type: ignore[union-attr]  # Conv2d has a bias by default
        self.body = nn.Sequential(*body, last)
        self.skip = skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.skip == "log-add":
            lx = torch.log(x + LOG_EPS)
            return torch.exp(lx + self.body(lx))
        if self.skip == "multiply":
            return x * self.body(x)
        return x / (self.body(x) + DIV_EPS)

    @property
    def receptive_radius(self) -> int:
        return sum(m.kernel_size[0] // 2 for m in self.body if isinstance(m, nn.Conv2d))


class DenoiseStage(nn.Module):
    """Denoise planes ``planes`` of a stack ``(B, N, H, W)`` one by one; the other planes pass through."""

    def __init__(self, net: DespeckleNet, planes: Sequence[int], channels: int) -> None:
        super().__init__()
        bad = [p for p in planes if not 0 <= p < channels]
        if bad or not planes:
            raise ValueError(f"planes {list(planes)[:8]} must be a non-empty subset of 0..{channels - 1}")
        self.net = net
        mask = torch.zeros(1, channels, 1, 1)
        mask[:, list(planes)] = 1.0
        self.register_buffer("mask", mask)

    mask: torch.Tensor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, h, w = x.shape
        clean = self.net(x.reshape(b * n, 1, h, w)).reshape(b, n, h, w).clamp(0.0, 1.0)
        return self.mask * clean + (1.0 - self.mask) * x


def speckle(shape: tuple[int, ...], model: str, rng: np.random.Generator, looks: float = 1.0) -> NDArray[np.float32]:
    """Multiplicative noise of mean 1: ``gamma`` (L = ``looks``), ``uniform`` or ``rayleigh`` (seed eqs. 3.1-3.3)."""
    if model == "gamma":
        if looks <= 0:
            raise ValueError(f"looks {looks}: must be > 0")
        f = rng.gamma(looks, 1.0 / looks, shape)
    elif model == "uniform":
        f = rng.uniform(*UNIFORM_BOUNDS, shape)
    elif model == "rayleigh":
        f = rng.rayleigh(math.sqrt(2.0 / math.pi), shape)
    else:
        raise ValueError(f"unknown speckle model {model!r}; valid: gamma, uniform, rayleigh")
    return f.astype(np.float32)


# --- simulator pairs ----------------------------------------------------------------------------

@dataclass(frozen=True)
class PairConfig:
    """Simulated fields whose darkfield planes give (clean, noisy) pairs.

    ``exposure_factor`` k: noisy darkfield frames are exposed k times shorter and gained back by k
    (same mean, k times the shot-noise variance); ``clean`` is the noise-free expectation at the
    calibrated exposure. ``noise`` ``gamma``/``uniform``/``rayleigh`` multiplies the clean frame instead.
    """

    fields: int = 12
    size_px: int = 96
    seed: int = 0
    recipe: str = "full-nohe"
    exposure_factor: float = 8.0
    noise: str = "camera"
    looks: float = 1.0
    wbc_per_mm2: float = 3000.0

    def __post_init__(self) -> None:
        if self.noise not in NOISES:
            raise ValueError(f"noise {self.noise!r}: valid {', '.join(NOISES)}")
        if self.fields < 1 or self.size_px < 32 or self.exposure_factor < 1:
            raise ValueError("pairs: fields >= 1, size_px >= 32 and exposure_factor >= 1")


@dataclass
class SimField:
    """One simulated field: the stack as captured ``(N, C, H, W)`` in [0, 1], the noise-free and
    noisy darkfield planes, which stack planes they are, the stained target and the white cells."""

    stack: NDArray[np.float32]
    clean: NDArray[np.float32]
    noisy: NDArray[np.float32]
    darkfield: list[int]
    stained: NDArray[np.float32]
    cells_px: list[tuple[float, float]] = field(default_factory=list)


def render_field(cfg: PairConfig, index: int) -> SimField:
    """Render field ``index`` of ``cfg`` with the simulator (deterministic from ``cfg.seed``)."""
    from firmware_bridge.recipes import resolve_recipe
    from firmware_bridge.rigs import get_profile
    from sim.camera import digitise, expected_electrons
    from sim.microscope import Microscope
    from sim.rasterize import rasterize
    from sim.sample import SmearConfig, make_smear, wbc_truth
    from sim.scan import calibrated_exposures
    from sim.stain import stain_smear

    seed = cfg.seed * 100_003 + index
    rng = np.random.default_rng(seed)
    m = Microscope(get_profile("thesis-43"))
    recipe = resolve_recipe(cfg.recipe, m.geometry)
    exposures = calibrated_exposures("thesis-43", cfg.recipe)
    sm = make_smear((cfg.size_px * m.pixel_um,) * 2, seed, SmearConfig.from_dict({"wbc_per_mm2": cfg.wbc_per_mm2}))
    shape = m.fine_shape((cfg.size_px, cfg.size_px))
    prepared = m.prepare(rasterize(sm, m.fine_pixel_um, shape))
    cam = m.config.camera
    span = np.float32(cam.max_adu - cam.black_level_adu)
    stack = (prepared.render_stack(recipe, exposures, rng).astype(np.float32) - cam.black_level_adu) / span
    dark_leds = {n: c.led for n, c in enumerate(recipe.channels)
                 if c.led is not None and not m.geometry.is_brightfield(c.led)}
    dark = list(dark_leds)
    clean, noisy = [], []
    for n, intensity in zip(dark, prepared.intensities(list(dark_leds.values())), strict=True):
        exp, irr = exposures[n], float(m.irradiance[dark_leds[n]])
        mean_e = expected_electrons(intensity, irr, exp, cam, m.channels)
        adu_per_e = np.float32(exp.gain / cam.electrons_per_adu)
        clean.append(np.clip(mean_e * adu_per_e / span, 0.0, 1.0))
        if cfg.noise == "camera":
            raw = digitise(mean_e / np.float32(cfg.exposure_factor), np.float32(exp.gain), cam, rng)
            noisy.append(np.clip((raw.astype(np.float32) - cam.black_level_adu) * cfg.exposure_factor / span, 0, 1))
        else:
            noisy.append(np.clip(clean[-1] * speckle(clean[-1].shape, cfg.noise, rng, cfg.looks), 0, 1))
    stained_smear = stain_smear(sm, seed, "mgg", 0.15)
    stained_field = m.prepare(rasterize(stained_smear, m.fine_pixel_um, shape))
    stained = (stained_field.render_brightfield_rgb(rng).astype(np.float32) - cam.black_level_adu) / span
    cells = [(w["center_um"][0] / m.pixel_um - 0.5, w["center_um"][1] / m.pixel_um - 0.5) for w in wbc_truth(sm)]
    return SimField(stack.astype(np.float32), np.stack(clean).astype(np.float32), np.stack(noisy).astype(np.float32),
                    dark, np.clip(stained, 0, 1).astype(np.float32), cells)


def plane_pairs(fields: Sequence[SimField]) -> tuple[torch.Tensor, torch.Tensor]:
    """(noisy, clean) darkfield planes ``(P, 1, H, W)`` of every field and colour."""
    noisy = np.concatenate([f.noisy.reshape(-1, *f.noisy.shape[-2:]) for f in fields])
    clean = np.concatenate([f.clean.reshape(-1, *f.clean.shape[-2:]) for f in fields])
    return torch.from_numpy(noisy[:, None]), torch.from_numpy(clean[:, None])


# --- training -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class DenoiseTrainConfig:
    """The seed trained 20 epochs with Adam, lr 1e-3, batch 32, MSE; here a few hundred steps on crops."""

    skip: str = "log-add"
    layers: int = 3
    features: int = 32
    kernel: int = 5
    steps: int = 600
    batch_size: int = 8
    crop_px: int = 32
    lr: float = 1e-3
    seed: int = 0


def train_denoiser(noisy: torch.Tensor, clean: torch.Tensor, cfg: DenoiseTrainConfig,
                   progress: Callable[[int, float], None] | None = None) -> DespeckleNet:
    """Fit a :class:`DespeckleNet` to (noisy, clean) planes ``(P, 1, H, W)`` with MSE on random crops."""
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    net = DespeckleNet(cfg.skip, cfg.layers, cfg.features, cfg.kernel)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    n, _, h, w = noisy.shape
    c = min(cfg.crop_px, h, w)
    net.train()
    for step in range(cfg.steps):
        idx = torch.randint(0, n, (cfg.batch_size,), generator=gen)
        y0 = int(torch.randint(0, h - c + 1, (1,), generator=gen))
        x0 = int(torch.randint(0, w - c + 1, (1,), generator=gen))
        x, t = noisy[idx, :, y0:y0 + c, x0:x0 + c], clean[idx, :, y0:y0 + c, x0:x0 + c]
        loss = torch.mean((net(x) - t) ** 2)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"denoiser ({cfg.skip}) loss is {loss.item()} at step {step}")
        opt.zero_grad()
        loss.backward()
        opt.step()
        if progress is not None:
            progress(step, float(loss))
    return net.eval()


@torch.no_grad()
def apply_planes(net: DespeckleNet, planes: NDArray[np.float32], chunk: int = 64) -> NDArray[np.float32]:
    """``net`` (eval mode) on planes ``(..., H, W)``; returns the same shape, clipped to [0, 1]."""
    flat = torch.from_numpy(np.ascontiguousarray(planes.reshape(-1, 1, *planes.shape[-2:]), np.float32))
    out = torch.cat([net(flat[i:i + chunk]) for i in range(0, flat.shape[0], chunk)]).clamp(0.0, 1.0)
    return out.numpy().reshape(planes.shape)


def save_denoiser(net: DespeckleNet, cfg: DenoiseTrainConfig, path: Any, extra: dict[str, Any]) -> None:
    """A ``torch.save`` dict loadable with ``weights_only=True``: config, state dict, report."""
    torch.save({"format": "stainless-denoiser", "version": 1, "config": asdict(cfg), "state": net.state_dict(),
                "report": extra}, path)


def load_denoiser(path: Any) -> DespeckleNet:
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(ckpt, dict) or ckpt.get("format") != "stainless-denoiser":
        raise ValueError(f"{path}: not a stainless denoiser checkpoint (format 'stainless-denoiser')")
    cfg = DenoiseTrainConfig(**ckpt["config"])
    net = DespeckleNet(cfg.skip, cfg.layers, cfg.features, cfg.kernel)
    net.load_state_dict(ckpt["state"])
    return net.eval()


__all__ = ["NOISES", "SKIPS", "DenoiseStage", "DenoiseTrainConfig", "DespeckleNet", "PairConfig", "SimField",
           "apply_planes", "load_denoiser", "plane_pairs", "render_field", "save_denoiser", "speckle",
           "train_denoiser"]
