"""The ``stainless-train`` command line: subcommand registry, lazy command imports, fit with --json, errors as
exit code 2."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.trainer.conftest import write_config
from trainer.cli import COMMANDS, build_parser, main


def test_every_command_module_registers_a_subcommand() -> None:
    parser = build_parser()
    (sub,) = (a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert list(sub.choices) == list(COMMANDS)  # each module registers the name it is listed under
    for name in ("fit", "evaluate", "segment-nucleus"):
        assert parser.parse_args([name, "a", *(["b"] if name == "evaluate" else []),
                                  *(["--out", "m.png"] if name == "segment-nucleus" else [])]).command == name


@pytest.mark.parametrize("command", ["find-wbc", "build-dataset", "segment-nucleus", "fit"])
def test_a_command_imports_only_its_own_module(command: str) -> None:
    """find-wbc (and its --workers processes) and the dataset commands start without torch (~1.5 s)."""
    code = ("import sys\nfrom trainer.cli import main\ntry:\n    main([sys.argv[1], '--help'])\n"
            "except SystemExit:\n    pass\nprint('torch' in sys.modules, file=sys.stderr)")
    done = subprocess.run([sys.executable, "-c", code, command], capture_output=True, text=True, timeout=120)
    assert command in done.stdout  # its own help
    assert done.stderr.strip().splitlines()[-1] == str(command == "fit")


def test_fit_json_and_resume(tmp_path: Path, store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = write_config(tmp_path / "c.toml", store, tmp_path / "run", train={"epochs": 2})
    assert main(["fit", str(cfg), "--json", "--threads", "1", "--stop-after-steps", "3"]) == 0
    assert json.loads(capsys.readouterr().out)["status"] == "stopped-after-steps"
    assert main(["fit", str(cfg), "--json", "--threads", "1", "--resume"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["status"] == "finished" and out["epoch"] == 2 and out["run_dir"] == str(tmp_path / "run")


def test_config_errors_exit_2_naming_the_key(tmp_path: Path, store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = write_config(tmp_path / "c.toml", store, tmp_path / "run", model={"n_blcks": 2})
    assert main(["fit", str(cfg)]) == 2
    assert "model.n_blcks: unknown key" in capsys.readouterr().err


def test_a_missing_dataset_is_an_error_not_a_traceback(trained: Path, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["evaluate", str(trained), str(tmp_path / "absent.zarr")]) == 2
    assert "not a stainless dataset" in capsys.readouterr().err
