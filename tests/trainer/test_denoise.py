"""Despeckling nets, noise models and simulator pairs (seed 003 §3.2)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from trainer.denoise import (
    DenoiseStage,
    DenoiseTrainConfig,
    DespeckleNet,
    PairConfig,
    apply_planes,
    load_denoiser,
    render_field,
    save_denoiser,
    speckle,
    train_denoiser,
)


@pytest.mark.parametrize(("model", "looks", "var"), [("gamma", 1.0, 1.0), ("gamma", 5.0, 0.2),
                                                      ("uniform", 1.0, 0.6929**2 / 12),
                                                      ("rayleigh", 1.0, (4 - math.pi) / math.pi)])
def test_speckle_models_have_mean_one_and_the_seeds_variance(model: str, looks: float, var: float) -> None:
    f = speckle((400_000,), model, np.random.default_rng(0), looks)
    assert f.mean() == pytest.approx(1.0, abs=0.01)
    assert f.var() == pytest.approx(var, rel=0.03)
    if model == "uniform":
        assert f.min() >= 0.6535 and f.max() <= 1.3464


def test_unknown_names_are_refused() -> None:
    with pytest.raises(ValueError, match="valid: log-add, multiply, divide"):
        DespeckleNet("subtract")
    with pytest.raises(ValueError, match="valid: gamma, uniform, rayleigh"):
        speckle((4,), "poisson", np.random.default_rng(0))
    with pytest.raises(ValueError, match="noise"):
        PairConfig(noise="salt")


@pytest.mark.parametrize("skip", ["multiply", "divide"])
def test_multiplicative_skips_start_as_the_identity(skip: str) -> None:
    x = torch.rand(2, 1, 20, 24) + 0.1
    net = DespeckleNet(skip, layers=2, features=8, kernel=3).eval()
    torch.testing.assert_close(net(x), x, rtol=1e-6, atol=1e-6)
    assert net.receptive_radius == 2


def test_training_removes_gamma_speckle() -> None:
    torch.manual_seed(0)
    yy, xx = torch.meshgrid(torch.linspace(0, 6, 40), torch.linspace(0, 6, 40), indexing="ij")
    phase = torch.rand(64, 1, 1, 1) * 6
    clean = (0.4 + 0.3 * torch.sin(xx + phase) * torch.cos(yy - phase)).expand(64, 1, 40, 40).contiguous()
    noise = torch.from_numpy(speckle(tuple(clean.shape), "gamma", np.random.default_rng(1), looks=4.0))
    noisy = (clean * noise).clamp(0, 1)
    cfg = DenoiseTrainConfig(skip="log-add", layers=2, features=8, kernel=5, steps=80, batch_size=8, crop_px=24)
    net = train_denoiser(noisy[:48], clean[:48], cfg)
    out = apply_planes(net, noisy[48:].numpy())
    before = float(((noisy[48:] - clean[48:]) ** 2).mean())
    after = float(((torch.from_numpy(out) - clean[48:]) ** 2).mean())
    assert after < 0.5 * before


def test_denoise_stage_touches_only_its_planes_and_exports_with_a_generator() -> None:
    from edge.device.backends.onnxruntime import OnnxRuntimeBackend
    from export.onnx_export import export_onnx

    torch.manual_seed(0)
    net = DespeckleNet("log-add", layers=1, features=4, kernel=3).eval()
    stage = DenoiseStage(net, [1, 3], channels=4)
    x = torch.rand(2, 4, 16, 16)
    y = stage(x)
    torch.testing.assert_close(y[:, [0, 2]], x[:, [0, 2]])
    assert not torch.allclose(y[:, [1, 3]], x[:, [1, 3]])
    model = torch.nn.Sequential(stage, torch.nn.Conv2d(4, 3, 3, padding=1), torch.nn.Sigmoid()).eval()
    onnx_model = export_onnx(model, 4, 16)
    ort = OnnxRuntimeBackend(onnx_model.SerializeToString(), threads=1)
    with torch.no_grad():
        want = model(x).numpy()
    np.testing.assert_allclose(ort.infer(x.numpy()), want, atol=1e-5)
    with pytest.raises(ValueError, match=r"subset of 0\.\.3"):
        DenoiseStage(net, [4], channels=4)


def test_simulator_pairs_are_the_same_scene_with_more_noise() -> None:
    f = render_field(PairConfig(size_px=64, exposure_factor=16.0), 0)
    assert f.stack.shape == (44, 3, 64, 64) and f.clean.shape == f.noisy.shape == (30, 3, 64, 64)
    assert len(f.darkfield) == 30 and 0 not in f.darkfield  # plane 0 is the brightfield image
    captured = f.stack[f.darkfield]
    assert f.noisy.mean() == pytest.approx(f.clean.mean(), rel=0.05)
    assert captured.mean() == pytest.approx(f.clean.mean(), rel=0.02)
    err_short = np.abs(f.noisy - f.clean).mean()
    err_captured = np.abs(captured - f.clean).mean()
    assert err_short > 2.5 * err_captured  # 16x shorter: ~4x the shot noise
    assert f.stained.shape == (3, 64, 64) and 0.2 < f.stained.mean() < 0.9


def test_checkpoint_round_trip(tmp_path: Path) -> None:
    cfg = DenoiseTrainConfig(skip="multiply", layers=1, features=4, kernel=3)
    net = DespeckleNet(cfg.skip, cfg.layers, cfg.features, cfg.kernel).eval()
    with torch.no_grad():
        net.body[0].weight.add_(0.5)
    save_denoiser(net, cfg, tmp_path / "d.pt", {"note": "x"})
    x = torch.rand(1, 1, 8, 8)
    torch.testing.assert_close(load_denoiser(tmp_path / "d.pt")(x), net(x))
    torch.save({"format": "something-else"}, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match="not a stainless denoiser"):
        load_denoiser(tmp_path / "bad.pt")
