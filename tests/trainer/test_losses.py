"""Losses: values on known inputs, GAN formulations against the seed's equations, VGG19 weight loading."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from skimage.metrics import structural_similarity

from core.config import ConfigError
from trainer.choices import PRESETS, VGG19_LAYERS, Weights
from trainer.losses import (
    GAN_LOSSES,
    fourier_loss,
    l1_loss,
    reconstruction_terms,
    rpgan_d_loss,
    rpgan_g_loss,
    ssim,
    ssim_loss,
)
from trainer.vgg import VGGFeatures, vgg19_features


def test_l1_and_fourier_are_zero_for_identical_images_and_positive_otherwise() -> None:
    a = torch.rand(2, 3, 16, 16)
    assert float(l1_loss(a, a)) == 0.0 and float(fourier_loss(a, a)) == 0.0
    assert float(l1_loss(a, a + 0.1)) == pytest.approx(0.1, abs=1e-6)
    assert float(fourier_loss(a, 0.5 * a)) > 0.0


def test_fourier_loss_ignores_a_circular_shift() -> None:
    # |FFT| is shift invariant: the term tolerates small misregistration that L1 punishes
    a = torch.rand(1, 3, 16, 16)
    shifted = torch.roll(a, shifts=(2, 1), dims=(2, 3))
    assert float(fourier_loss(a, shifted)) < 1e-5 < float(l1_loss(a, shifted))


def test_ssim_agrees_with_scikit_image() -> None:
    rng = np.random.default_rng(0)
    a = rng.random((3, 32, 32)).astype(np.float32)
    b = np.clip(a + rng.normal(0, 0.1, a.shape), 0, 1).astype(np.float32)
    ours = float(ssim(torch.from_numpy(a)[None], torch.from_numpy(b)[None]))
    ref = structural_similarity(a, b, channel_axis=0, data_range=1.0, gaussian_weights=True, sigma=1.5,
                                use_sample_covariance=False)
    assert ours == pytest.approx(ref, abs=1e-4)  # the valid region is scikit-image's cropped mean
    assert float(ssim_loss(torch.from_numpy(a)[None], torch.from_numpy(a)[None])) == pytest.approx(0.0, abs=1e-5)


def test_relativistic_paired_gan_follows_eqs_2_30_and_2_31() -> None:
    c_r, c_f = torch.tensor([[2.0], [0.5]]), torch.tensor([[1.0], [1.5]])
    sig = torch.sigmoid
    assert float(rpgan_d_loss(c_r, c_f)) == pytest.approx(float(-torch.log(sig(c_r - c_f)).mean()), rel=1e-6)
    assert float(rpgan_g_loss(c_r, c_f)) == pytest.approx(float(-torch.log(sig(c_f - c_r)).mean()), rel=1e-6)


@pytest.mark.parametrize("name", sorted(GAN_LOSSES))
def test_gan_losses_prefer_a_critic_that_separates(name: str) -> None:
    d_loss, g_loss = GAN_LOSSES[name]
    good_real, good_fake = torch.full((4, 1), 3.0), torch.full((4, 1), -3.0)
    assert float(d_loss(good_real, good_fake)) < float(d_loss(good_fake, good_real))
    assert float(g_loss(good_real, good_fake)) > float(g_loss(good_fake, good_real))


def test_presets_carry_the_seed_weights() -> None:
    assert PRESETS["maePFNET"].perceptual == 0.0125 and PRESETS["maePFNET"].fourier == 0.0125
    assert PRESETS["maePF-RpGAN-SN"].gan == 0.005 and PRESETS["maePF-RpGAN-SN"].warm_start_required
    assert PRESETS["maeNET"].perceptual == PRESETS["maeNET"].fourier == 0.0


def test_reconstruction_terms_weighting() -> None:
    a, b = torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 16)
    t = reconstruction_terms(a, b, Weights(l1=1.0, fourier=2.0, ssim=0.5))
    assert float(t["total"]) == pytest.approx(float(t["l1"] + 2 * t["fourier"] + 0.5 * t["ssim"]), rel=1e-6)
    assert "perceptual" not in t


def _fake_torchvision_vgg19(path: Path) -> None:
    """A state dict with torchvision's key names (random weights, as no real ones can be downloaded)."""
    torch.manual_seed(0)
    feats = vgg19_features("block5_conv4")
    state = {f"features.{k}": v for k, v in feats.state_dict().items()}
    state.update({"classifier.0.weight": torch.zeros(2, 2), "classifier.0.bias": torch.zeros(2)})
    torch.save(state, path)


def test_vgg19_layout_matches_torchvision_indices(tmp_path: Path) -> None:
    assert VGG19_LAYERS["block4_conv4"] == 25 and VGG19_LAYERS["block5_conv4"] == 34
    assert VGG19_LAYERS["block1_conv1"] == 0 and VGG19_LAYERS["block3_conv1"] == 10
    _fake_torchvision_vgg19(tmp_path / "vgg19.pth")
    vgg = VGGFeatures(tmp_path / "vgg19.pth")
    assert isinstance(vgg.features[-1], torch.nn.Conv2d)  # before activation
    out = vgg(torch.rand(1, 3, 32, 32))
    assert out.shape == (1, 512, 4, 4)
    assert not any(p.requires_grad for p in vgg.parameters())
    x = torch.rand(1, 3, 32, 32, requires_grad=True)
    t = reconstruction_terms(x, torch.rand(1, 3, 32, 32), Weights(perceptual=0.0125), vgg)
    t["total"].backward()
    assert x.grad is not None and float(t["perceptual"].detach()) > 0


def test_missing_or_wrong_vgg_weights_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        VGGFeatures(tmp_path / "absent.pth")
    torch.save({"features.0.weight": torch.zeros(1)}, tmp_path / "bad.pth")
    with pytest.raises(ConfigError, match="lacks VGG19 layers"):
        VGGFeatures(tmp_path / "bad.pth")
    with pytest.raises(ConfigError, match="not a VGG19 conv"):
        vgg19_features("block9_conv1")
