"""The fit-style config: defaults from the seed, refusals by key name."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.config import ConfigError
from trainer.style.config import StyleConfig, load_style_config


def test_defaults_are_the_seeds_hyperparameters() -> None:
    cfg = StyleConfig.from_dict({"data": {"a": "x", "b": "y"}})
    assert (cfg.loss.cycle, cfg.loss.identity, cfg.loss.gan_type) == (10.0, 5.0, "lsgan")
    assert cfg.optim.betas == (0.5, 0.9) and cfg.optim.lr == 2e-4 and cfg.optim.pool_size == 50
    assert cfg.model.d_layers == 3 and cfg.model.generator == "resnet"


@pytest.mark.parametrize(("doc", "match"), [
    ({"data": {"a": "x", "b": "y"}, "loss": {"gan_type": "rpgan"}}, "loss.gan_type"),
    ({"data": {"a": "x", "b": "y"}, "model": {"generator": "rrdb"}}, "model.generator"),
    ({"data": {"a": "x", "b": "y"}, "train": {"style": "Wright Giemsa"}}, "train.style"),
    ({"data": {"a": "x", "b": "y"}, "optim": {"betas": [0.5]}}, "optim.betas"),
    ({"data": {"a": "x", "b": "y", "patch_size": 40}, "model": {"n_down": 4}}, "data.patch_size"),
    ({"data": {"a": "x", "b": "y", "patch_size": 16}}, "data.patch_size: expected >= 32"),
    ({"data": {"a": "x", "b": "y", "a_channels": 2}}, "loss.identity"),
    ({"data": {"a": "x", "b": "y", "a_channels": 2}, "loss": {"identity": 0.0}, "model": {"generator": "affine"}},
     "model.affine_init"),
    ({"data": {"a": "x", "b": "y", "a_channels": 2}, "loss": {"identity": 0.0}, "model": {"residual": True}},
     "model.residual"),
    ({"data": {"a": "x", "b": "y"}, "optim": {"decay_epochs": 20}, "train": {"epochs": 5}}, "optim.decay_epochs"),
    ({"data": {"a": "x", "b": "y"}, "model": {"colour": 1}}, "model.colour: unknown key"),
    ({"model": {}}, r"\[data\] section missing"),
])
def test_bad_values_are_refused_by_key(doc: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        StyleConfig.from_dict(doc)


def test_n_channel_a_with_pseudo_colours_loads_from_toml(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[data]\na = "r_f"\nb = "he"\na_channels = 2\n[loss]\nidentity = 0.0\n'
                    '[model]\ngenerator = "affine"\naffine_init = "pseudo-colour"\n'
                    'pseudo_colours = [[1.0, 0.55, 0.88], [0.3, 0.2, 1.0]]\n')
    cfg = load_style_config(path)
    assert cfg.model.pseudo_colours == ((1.0, 0.55, 0.88), (0.3, 0.2, 1.0))
    with pytest.raises(ConfigError, match=r"model\.pseudo_colours"):
        StyleConfig.from_dict({**cfg.to_dict(), "model": {**cfg.to_dict()["model"], "pseudo_colours": [[1, 1, 1]]}})
