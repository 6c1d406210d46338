"""Simulated scans on disk: the raw-scan format, resume, atomicity and the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from core import rawscan
from sim.cli import main
from sim.scan import ScanConfig, Simulator, scan


@pytest.fixture(scope="module")
def small_scan(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("scan")
    code = main(["scan", "--fields", "2", "--seed", "1", "--out", str(out), "--field-size", "160x128",
                 "--stained", "--hr", "--wbc-density", "1500", "--json"])
    assert code == 0
    return out


def test_scan_writes_complete_fields_in_the_documented_format(small_scan: Path) -> None:
    fields = rawscan.list_fields(small_scan)
    assert [f.name for f in fields] == ["field_0000", "field_0001"]
    stack = rawscan.read_image(fields[0], "unstained")
    assert stack.pixels.shape == (74, 3, 128, 160) and stack.pixels.dtype == np.uint16
    meta = stack.meta
    assert meta["recipe"]["id"] == "full" and len(meta["recipe"]["hash"]) == 16
    assert [p["channel"] for p in meta["planes"]] == meta["recipe"]["channels"]
    assert meta["pixel_size_um"] == pytest.approx(5.86 / 20)
    stained = rawscan.read_image(fields[0], "stained")
    assert stained.pixels.shape == (3, 128, 160) and stained.meta["stain"] == "mgg"
    truth = rawscan.read_truth(small_scan, 0)
    hr = rawscan.read_image(fields[0], "hr")
    assert hr.pixels.shape[0] == len(truth["wbcs"]) > 0
    assert hr.pixels.shape[1:] == (3, 320, 320)
    assert hr.meta["objective"]["na"] == 1.25
    assert not (fields[0] / "truth.json").exists()  # truth is kept apart from what tools read
    labels = rawscan.truth_dir(small_scan, 0) / "labels.tif"
    assert labels.is_file()


def test_fields_differ_and_second_run_resumes_without_rewriting(small_scan: Path) -> None:
    a = rawscan.read_image(small_scan / "fields" / "field_0000").pixels
    b = rawscan.read_image(small_scan / "fields" / "field_0001").pixels
    assert not np.array_equal(a, b)
    before = (small_scan / "fields" / "field_0000" / "unstained.ome.tif").stat().st_mtime_ns
    config = json.loads((small_scan / "scan.json").read_text())["config"]
    config["field_size_px"] = tuple(config["field_size_px"])
    config["stage_origin_um"] = tuple(config["stage_origin_um"])
    scan(ScanConfig(**config), small_scan)
    assert (small_scan / "fields" / "field_0000" / "unstained.ome.tif").stat().st_mtime_ns == before


def test_simulation_is_reproducible_from_the_seed() -> None:
    cfg = ScanConfig(recipe="le8", field_size_px=(48, 48), seed=4)
    one, two = Simulator(cfg).simulate_field(0), Simulator(cfg).simulate_field(0)
    assert np.array_equal(one.stack, two.stack)
    assert one.truth == two.truth


def test_a_field_without_white_cells_has_an_empty_hr_listing(tmp_path: Path) -> None:
    scan(ScanConfig(recipe="le8", field_size_px=(32, 32), hr=True), tmp_path)
    hr = rawscan.read_image(tmp_path / "fields" / "field_0000", "hr")
    assert hr.pixels.shape[0] == 0 and hr.meta["tile_centres_stage_um"] == []


def test_a_failed_write_leaves_no_field_behind(tmp_path: Path) -> None:
    data = Simulator(ScanConfig(recipe="le8", field_size_px=(32, 32))).simulate_field(0)
    data.stack_meta["planes"] = [object()]  # not serialisable: the write fails half-way
    rawscan.prepare_output(tmp_path, {})
    with pytest.raises(TypeError):
        rawscan.write_field(tmp_path, data)
    assert rawscan.list_fields(tmp_path) == []
    assert not any(p.name.startswith(".") for p in (tmp_path / "fields").iterdir())


def test_other_configuration_in_the_same_folder_is_refused(small_scan: Path) -> None:
    with pytest.raises(rawscan.RawScanError, match="different configuration"):
        scan(ScanConfig(recipe="le8"), small_scan)


def test_cli_errors_are_clear(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["scan", "--out", str(tmp_path / "x"), "--profile", "nope"]) == 2
    assert "valid profiles: sci-round-257, thesis-43" in capsys.readouterr().err
    assert main(["scan", "--out", str(tmp_path / "y"), "--recipe", "le99"]) == 2
    assert "valid recipes" in capsys.readouterr().err
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert main(["scan", "--out", str(blocker / "sub")]) == 2
    assert "cannot write to output folder" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["scan", "--out", str(tmp_path), "--field-size", "0x5"])


def test_show_draws_a_contact_sheet(small_scan: Path, tmp_path: Path) -> None:
    import cv2

    out = tmp_path / "sheet.png"
    assert main(["show", str(small_scan / "fields" / "field_0000"), "--out", str(out)]) == 0
    img = cv2.imread(str(out))
    assert img is not None and img.shape[0] > 600 and img.shape[1] >= 5 * 320
    assert img.std() > 20  # not a blank page
    assert main(["show", str(tmp_path / "nothing"), "--out", str(out)]) == 2


def test_public_field_methods_give_the_written_field() -> None:
    """The virtual bench rebuilds a field through these methods: they must give the scan writer's field."""
    from sim.scan import Simulator, field_seeds

    sim = Simulator(ScanConfig(recipe="brightfield", fields=2, seed=4, field_size_px=(48, 48),
                               smear={"wbc_per_mm2": 3000.0}))
    data = sim.simulate_field(1)
    shift = (data.truth["pls_misalignment_um"][0], data.truth["pls_misalignment_um"][1])
    assert sim.truth(1, sim.smear(1), shift) == data.truth
    assert sim.seeds(1).ints == field_seeds(4, 1).ints != field_seeds(4, 0).ints
    rgb, stained = sim.stained_truth(1)
    assert rgb.shape == (3, 48, 48) and rgb.dtype == np.uint16 and stained.stained
