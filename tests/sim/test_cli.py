from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from firmware_bridge.rigs import get_rig
from sim.cli import main
from sim.realstack import write_real_stack
from sim.sample import SmearConfig
from sim.stack_sim import SimSetup, simulate


@pytest.fixture(scope="module")
def stack_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rig = get_rig("uconn-15x15")
    images = simulate(SimSetup(rig, (32, 32), 0.0, SmearConfig(rbc_cover=0.2), 3, stain="wright-giemsa"))
    return write_real_stack(tmp_path_factory.mktemp("real") / "stack.mat", images, 630.0)


def test_compare_real_prints_json_and_draws_the_png(stack_file: Path, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    png = tmp_path / "cmp.png"
    assert main(["compare-real", str(stack_file), "--json", "--out", str(png), "--fields", "2"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert len(report["bins"]) == 6 and report["wavelength_nm"] == pytest.approx(630.0)
    assert report["sample"]["seeds"] == [0, 1] and all(len(b["sim_df_bf_fields"]) == 2 for b in report["bins"])
    assert png.stat().st_size > 10_000
    assert main(["compare-real", str(stack_file), "--stain", "none", "--fields", "1"]) == 0
    out = capsys.readouterr().out
    assert "brightfield contrast: real" in out and "the mean of 1 field (seeds 0)" in out
    assert "darkfield one thin object fitted to the other images predicts, real / sim: " in out
    assert main(["compare-real", str(stack_file), "--fields", "0"]) == 2


def test_compare_real_simulates_at_a_defocus_given_instead_of_the_files(stack_file: Path,
                                                                        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["compare-real", str(stack_file), "--sample", "given", "--defocus-um", "-37.5", "--fields", "1",
                 "--edge-stray", "0,0.03", "--diffuse-light", "0", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["defocus_um"] == -37.5


def test_import_real_writes_a_field(stack_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["import-real", str(stack_file), "--out", str(tmp_path / "scan"), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert Path(summary["field"], "unstained.ome.tif").is_file()


def test_a_bad_stack_is_an_error_not_a_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = write_real_stack(tmp_path / "short.mat", np.ones((10, 8, 8), np.float32), 630.0)
    assert main(["compare-real", str(bad)]) == 2
    assert "10 images but rig 'uconn-15x15' has 225 LEDs" in capsys.readouterr().err


def test_edge_stray_given_on_the_command_line_is_used(stack_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["compare-real", str(stack_file), "--sample", "given", "--edge-stray", "0.03,0.04", "--fields", "1",
                 "--json"]) == 0
    stray = json.loads(capsys.readouterr().out)["edge_stray"]
    assert (stray["share"], stray["falloff_na"], stray["from"]) == (0.03, 0.04, "given")
    with pytest.raises(SystemExit):
        main(["compare-real", str(stack_file), "--edge-stray", "0.5"])
    assert "SHARE,FALLOFF" in capsys.readouterr().err
