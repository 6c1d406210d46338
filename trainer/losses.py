"""Loss functions on tensors, the GAN formulations and the seed's named presets.

All image losses take ``pred`` and ``target`` of shape ``(B, 3, H, W)`` in [0, 1] and return a scalar
(mean over the batch). Critic values ``c_real`` / ``c_fake`` are raw discriminator outputs ``C(x)``,
``(B, 1)`` or ``(B, 1, h, w)`` for a PatchGAN.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from trainer.choices import Weights


def l1_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean absolute error over all pixels and channels."""
    return F.l1_loss(pred, target)


def fourier_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Seed eq. 2.10: L1 between the FFT magnitudes of each channel (orthonormal FFT, so the scale
    matches pixel values)."""
    fp = torch.fft.fft2(pred.float(), norm="ortho").abs()
    ft = torch.fft.fft2(target.float(), norm="ortho").abs()
    return F.l1_loss(fp, ft)


def _gaussian_window(size: int, sigma: float, channels: int, like: torch.Tensor) -> torch.Tensor:
    x = torch.arange(size, dtype=like.dtype, device=like.device) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    g = g / g.sum()
    return (g[:, None] * g[None, :]).expand(channels, 1, size, size).contiguous()


def ssim(pred: torch.Tensor, target: torch.Tensor, window: int = 11, sigma: float = 1.5,
         data_range: float = 1.0, reduce: bool = True) -> torch.Tensor:
    """SSIM (Wang et al. 2004) with a Gaussian window, valid region only; per sample ``(B,)`` unless ``reduce``."""
    c = pred.shape[1]
    w = _gaussian_window(window, sigma, c, pred)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    mu_p, mu_t = F.conv2d(pred, w, groups=c), F.conv2d(target, w, groups=c)
    var_p = F.conv2d(pred * pred, w, groups=c) - mu_p**2
    var_t = F.conv2d(target * target, w, groups=c) - mu_t**2
    cov = F.conv2d(pred * target, w, groups=c) - mu_p * mu_t
    s = ((2 * mu_p * mu_t + c1) * (2 * cov + c2)) / ((mu_p**2 + mu_t**2 + c1) * (var_p + var_t + c2))
    per_sample = s.flatten(1).mean(1)
    return per_sample.mean() if reduce else per_sample


def ssim_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``1 - SSIM``."""
    return 1.0 - ssim(pred, target)


def perceptual_loss(pred: torch.Tensor, target: torch.Tensor, vgg: nn.Module) -> torch.Tensor:
    """Seed eq. 2.9: L1 between VGG19 features (``vgg`` = :class:`trainer.vgg.VGGFeatures`, before activation)."""
    return F.l1_loss(vgg(pred), vgg(target).detach())


# --- GAN formulations: (discriminator loss, generator loss) on raw critic outputs -----------------

def rpgan_d_loss(c_real: torch.Tensor, c_fake: torch.Tensor) -> torch.Tensor:
    """Seed eq. 2.30 (relativistic paired): ``-log σ(C(x_r) - C(x_f))``, mean over pairs."""
    return F.softplus(-(c_real - c_fake)).mean()


def rpgan_g_loss(c_real: torch.Tensor, c_fake: torch.Tensor) -> torch.Tensor:
    """Seed eq. 2.31: ``-log σ(C(x_f) - C(x_r))``, mean over pairs."""
    return F.softplus(-(c_fake - c_real)).mean()


def lsgan_d_loss(c_real: torch.Tensor, c_fake: torch.Tensor) -> torch.Tensor:
    """Least squares GAN (Mao et al.): real → 1, fake → 0."""
    return 0.5 * (((c_real - 1) ** 2).mean() + (c_fake**2).mean())


def lsgan_g_loss(c_real: torch.Tensor, c_fake: torch.Tensor) -> torch.Tensor:
    return 0.5 * ((c_fake - 1) ** 2).mean()


def vanilla_d_loss(c_real: torch.Tensor, c_fake: torch.Tensor) -> torch.Tensor:
    """Standard GAN with logits."""
    return (F.binary_cross_entropy_with_logits(c_real, torch.ones_like(c_real))
            + F.binary_cross_entropy_with_logits(c_fake, torch.zeros_like(c_fake)))


def vanilla_g_loss(c_real: torch.Tensor, c_fake: torch.Tensor) -> torch.Tensor:
    """Non-saturating generator loss."""
    return F.binary_cross_entropy_with_logits(c_fake, torch.ones_like(c_fake))


GanLoss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
GAN_LOSSES: dict[str, tuple[GanLoss, GanLoss]] = {
    "rpgan": (rpgan_d_loss, rpgan_g_loss),
    "lsgan": (lsgan_d_loss, lsgan_g_loss),
    "vanilla": (vanilla_d_loss, vanilla_g_loss),
}


def reconstruction_terms(pred: torch.Tensor, target: torch.Tensor, w: Weights,
                         vgg: nn.Module | None = None) -> dict[str, torch.Tensor]:
    """The non-adversarial terms with non-zero weight, unweighted, plus ``"total"`` (weighted sum)."""
    terms: dict[str, torch.Tensor] = {"l1": l1_loss(pred, target)}
    total = w.l1 * terms["l1"]
    if w.fourier:
        terms["fourier"] = fourier_loss(pred, target)
        total = total + w.fourier * terms["fourier"]
    if w.ssim:
        terms["ssim"] = ssim_loss(pred, target)
        total = total + w.ssim * terms["ssim"]
    if w.perceptual and vgg is not None:
        terms["perceptual"] = perceptual_loss(pred, target, vgg)
        total = total + w.perceptual * terms["perceptual"]
    terms["total"] = total
    return terms
