"""Config loading: defaults, the seed's settings, and errors that name the key."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from core.config import ConfigError
from trainer.config import FitConfig, load_config, resolved, to_toml


def test_defaults_are_the_seed_optimiser_and_round_trip_through_toml(tmp_path: Path) -> None:
    cfg = FitConfig.from_dict({"data": {"path": "d.zarr"}})
    assert (cfg.optim.lr_g, cfg.optim.lr_d, cfg.optim.betas, cfg.optim.batch_size) == (2e-4, 4e-4, (0.5, 0.9), 20)
    assert cfg.loss.preset == "maePFNET" and cfg.loss.vgg_weights == ""
    (tmp_path / "c.toml").write_text(to_toml(cfg))
    assert load_config(tmp_path / "c.toml") == cfg


def test_resolved_weights_drop_perceptual_without_vgg_file(caplog: pytest.LogCaptureFixture) -> None:
    cfg = resolved(FitConfig.from_dict({"data": {"path": "d"}, "loss": {"preset": "maePFNET"}}))
    assert cfg.loss.perceptual == 0.0 and cfg.loss.fourier == 0.0125
    assert "needs loss.vgg_weights" in caplog.text
    with_vgg = resolved(FitConfig.from_dict({"data": {"path": "d"}, "loss": {"vgg_weights": "v.pth"}}))
    assert with_vgg.loss.perceptual == 0.0125
    tomllib.loads(to_toml(with_vgg))  # the resolved config is valid TOML


@pytest.mark.parametrize(("data", "key"), [
    ({"data": {"path": "d", "pth": 1}}, "data.pth"),
    ({"data": {"path": "d"}, "model": {"generator": "resnet"}}, "model.generator"),
    ({"data": {"path": "d"}, "model": {"n_blocks": -1}}, "model.n_blocks"),
    ({"data": {"path": "d"}, "optim": {"batch_size": 2.5}}, "optim.batch_size"),
    ({"data": {"path": "d"}, "optim": {"betas": [0.5]}}, "optim.betas"),
    ({"data": {"path": "d"}, "loss": {"preset": "maePFGAN"}}, "loss.preset"),
    ({"data": {"path": "d"}, "loss": {"gan_type": "wgan"}}, "loss.gan_type"),
    ({"data": {"path": "d"}, "train": {"epochs": 0}}, "train.epochs"),
    ({"data": {"path": "d"}, "train": {"amp": "yes"}}, "train.amp"),
    ({"data": {"path": "d"}, "loss": {"preset": "maePF-RpGAN-SN"}}, "train.warm_start"),
    ({"data": {"path": "d"}, "trian": {}}, "trian"),
    ({"model": {}}, "[data]"),
])
def test_bad_values_name_the_key(data: dict[str, dict[str, object]], key: str) -> None:
    with pytest.raises(ConfigError, match=key.replace("[", r"\[").replace("]", r"\]")):
        FitConfig.from_dict(data)


def test_toml_syntax_errors_and_missing_files(tmp_path: Path) -> None:
    (tmp_path / "bad.toml").write_text("[data\npath = 1")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(tmp_path / "bad.toml")
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "absent.toml")
