"""The names configs accept (trainer/choices.py) are the registries' keys, and checking a config needs no torch."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from trainer.choices import DISCRIMINATOR_NAMES, GAN_LOSS_NAMES, GENERATOR_NAMES, STYLE_GENERATOR_NAMES

ROOT = Path(__file__).resolve().parents[2]


def test_names_are_the_registries_keys() -> None:
    from trainer.losses import GAN_LOSSES
    from trainer.models import DISCRIMINATORS, GENERATORS, STYLE_GENERATORS

    assert tuple(GENERATORS) == GENERATOR_NAMES and tuple(DISCRIMINATORS) == DISCRIMINATOR_NAMES
    assert tuple(STYLE_GENERATORS) == STYLE_GENERATOR_NAMES and tuple(GAN_LOSSES) == GAN_LOSS_NAMES


def test_validating_trainer_configs_imports_no_torch() -> None:
    probe = f"""
import sys
class Refuse:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "torch":
            raise ImportError("validating a config imported torch")
sys.meta_path.insert(0, Refuse())
from trainer.config import load_config
from trainer.data.config import load_build_config
from trainer.style.config import load_style_config
cfg = load_config({str(ROOT / "deploy/default-model/train.toml")!r})
style = load_style_config({str(ROOT / "deploy/style/mgg-to-wg.toml")!r})
print(cfg.model.generator, style.model.generator)
"""
    res = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
