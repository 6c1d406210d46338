"""Generators, discriminators and the FLOP counter: shapes, ranges, registries and the seed's figures."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from trainer.config import NetworkConfig
from trainer.models import (
    DISCRIMINATORS,
    GENERATORS,
    PatchDiscriminator,
    RRDBGenerator,
    VGGDiscriminator,
    build_discriminator,
    build_generator,
    count_flops,
)
from trainer.models.rrdb import ResidualDenseBlock


@pytest.mark.parametrize("name", sorted(GENERATORS))
def test_generators_map_a_stack_to_rgb_in_unit_range(name: str) -> None:
    g = build_generator(NetworkConfig(generator=name, n_blocks=1, features=8, growth=4, unet_depth=3), 12)
    with torch.no_grad():
        y = g(torch.randn(2, 12, 32, 32) * 5)
    assert y.shape == (2, 3, 32, 32)
    assert float(y.min()) >= 0.0 and float(y.max()) <= 1.0


def test_clamp_head_clips_and_sigmoid_is_default() -> None:
    g = RRDBGenerator(6, n_blocks=1, features=8, growth=4, output="clamp")
    assert g.head.kind == "clamp" and RRDBGenerator(6, 1, 8, 4).head.kind == "sigmoid"
    with torch.no_grad():
        assert float(g(torch.randn(1, 6, 16, 16) * 100).max()) <= 1.0


def test_residual_dense_block_starts_close_to_identity() -> None:
    torch.manual_seed(0)
    block = ResidualDenseBlock(16, 8)
    x = torch.randn(1, 16, 16, 16)
    # scaled (x0.1) initialisation + residual scaling 0.2: the block barely changes its input at start
    with torch.no_grad():
        assert float((block(x) - x).abs().mean()) < 0.05 * float(x.abs().mean())


def test_seed_generator_costs_about_25_gflop_per_cell() -> None:
    g = RRDBGenerator(44 * 3, n_blocks=4, features=64, growth=32)
    assert count_flops(g, (132, 64, 64)) == pytest.approx(24.8, abs=0.1)


def test_count_flops_of_a_single_conv_and_linear() -> None:
    conv = nn.Conv2d(3, 5, 3, padding=1)
    assert count_flops(conv, (3, 10, 10)) == pytest.approx(2 * 3 * 5 * 9 * 100 / 1e9)
    assert count_flops(nn.Linear(7, 2), (7,)) == pytest.approx(2 * 14 / 1e9)


def test_vgg_discriminator_matches_the_seed_layout() -> None:
    d = VGGDiscriminator(patch_size=64)
    assert d.classifier[0].in_features == 4096  # 8·8·64 as in seed Fig. 3.8
    assert d(torch.rand(3, 3, 64, 64)).shape == (3, 1)
    assert any("parametrizations" in n for n, _ in d.named_parameters())  # spectral norm


def test_patch_discriminator_gives_a_map() -> None:
    assert PatchDiscriminator()(torch.rand(2, 3, 64, 64)).shape == (2, 1, 6, 6)


def test_build_discriminator_and_unknown_names() -> None:
    for name in DISCRIMINATORS:
        d = build_discriminator(NetworkConfig(discriminator=name, d_features=8), 32)
        assert d(torch.rand(2, 3, 32, 32)).shape[0] == 2
    with pytest.raises(ValueError, match="rrdb, unet, affine"):
        NetworkConfig(generator="resnet")


@pytest.mark.parametrize("name", ["resnet", "unet"])
def test_cyclegan_generators_keep_size_and_unit_range_for_n_channels(name: str) -> None:
    from trainer.models import STYLE_GENERATORS

    g = STYLE_GENERATORS[name](2, 3, features=4, n_down=2)
    with torch.no_grad():
        y = g(torch.rand(2, 2, 32, 32))
    assert y.shape == (2, 3, 32, 32) and float(y.min()) >= 0.0 and float(y.max()) <= 1.0


def test_resnet_generator_has_the_cyclegan_layout() -> None:
    from trainer.models import ResnetGenerator
    from trainer.models.cyclegan import ResidualBlock

    g = ResnetGenerator(3, 3, features=8, n_blocks=9, n_down=2)
    kinds = [type(m) for m in g.modules()]
    assert sum(k is ResidualBlock for k in kinds) == 9
    assert nn.BatchNorm2d not in kinds and kinds.count(nn.InstanceNorm2d) == 3 + 2 * 9 + 2
    assert isinstance(g.net[0], nn.ReflectionPad2d) and isinstance(g.net[-1][-1], nn.Tanh)
    assert sum(isinstance(m, nn.ConvTranspose2d) for m in g.modules()) == 2
    assert ResnetGenerator(3, 3, features=8, n_blocks=6).net[7].in_channels == 16  # features double per level


@pytest.mark.parametrize("name", ["resnet", "unet"])
def test_residual_generators_start_as_the_identity(name: str) -> None:
    from trainer.models import STYLE_GENERATORS

    g = STYLE_GENERATORS[name](3, 3, features=4, n_down=1, residual=True)
    x = torch.rand(2, 3, 16, 16)
    torch.testing.assert_close(g(x), x)
    with pytest.raises(ValueError, match="equal channel counts"):
        STYLE_GENERATORS[name](2, 3, features=4, residual=True)


def test_patchgan_takes_instance_norm_and_refuses_unknown_norms() -> None:
    d = PatchDiscriminator(3, 8, 3, spectral=False, norm="instance")
    assert any(isinstance(m, nn.InstanceNorm2d) for m in d.modules())
    assert not any(isinstance(m, nn.BatchNorm2d) for m in d.modules())
    assert d(torch.rand(2, 3, 64, 64)).shape == (2, 1, 6, 6)
    with pytest.raises(ValueError, match="unknown discriminator norm 'group'"):
        PatchDiscriminator(norm="group")
