"""The style subcommands through ``stainless-train``'s main: fit-style, eval-style, errors as exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.trainer.style.conftest import style_folders  # noqa: F401  (fixture)
from trainer.cli import main


def test_fit_style_then_eval_style_print_json(style_folders: tuple[Path, Path], tmp_path: Path,  # noqa: F811
                                              capsys: pytest.CaptureFixture[str]) -> None:
    a, b = style_folders
    cfg = tmp_path / "style.toml"
    cfg.write_text(f'[data]\na = "{a}"\nb = "{b}"\npatch_size = 32\n[model]\ngenerator = "affine"\n'
                   f'[train]\nout = "{tmp_path / "run"}"\nstyle = "bluer"\nepochs = 1\nsteps_per_epoch = 2\n')
    assert main(["fit-style", str(cfg), "--threads", "1", "--json"]) == 0
    fit = json.loads(capsys.readouterr().out)
    assert fit["status"] == "finished" and fit["step"] == 2 and "nucleus_iou" in fit["metrics"]
    strip = tmp_path / "strip.png"
    assert main(["eval-style", str(tmp_path / "run" / "style.pt"), "--a", str(a), "--b", str(b), "--strip",
                 str(strip), "--threads", "1", "--json"]) == 0
    ev = json.loads(capsys.readouterr().out)
    assert ev["style"] == "bluer" and ev["cells"] == 8 and strip.is_file()


def test_bad_style_config_is_an_error_not_a_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text('[data]\na = "x"\nb = "y"\n[loss]\ngan_type = "rpgan"\n')
    assert main(["fit-style", str(cfg)]) == 2
    assert "loss.gan_type" in capsys.readouterr().err
