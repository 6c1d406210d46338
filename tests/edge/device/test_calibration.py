"""Per-LED auto-exposure and flat fields on the virtual bench; the calibration file and its checks."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from core.camera import Exposure
from core.config import ConfigError
from edge.bench.camera import SimCamera
from edge.bench.daemon import build_bench_pipeline
from edge.device.acquisition import Acquirer
from edge.device.calibration import (
    Calibration,
    Measurement,
    calibrate,
    flat_gain,
    load_calibration,
    measure,
    search_exposure,
    write_calibration,
)
from edge.device.config import AcquisitionConfig, CalibrationConfig, VirtualBenchConfig, config_from_dict
from edge.device.stack import FieldRequest
from firmware_bridge.client import LedArray, open_led_array
from firmware_bridge.recipes import StackRecipe, resolve_recipe
from tests.edge.conftest import bench_config

CAL = CalibrationConfig()  # flat fields from 8 frames, smoothed over 63 px


def linear_sensor(adu_per_ms: float, bright_share: float = 0.0) -> tuple[list[Exposure], object]:
    """A noise-free sensor: level ∝ effective exposure; ``bright_share`` of pixels 4x brighter."""
    seen: list[Exposure] = []

    def at(e: Exposure) -> Measurement:
        seen.append(e)
        level = adu_per_ms * e.effective_ms
        return Measurement(min(level, 1.0), bright_share if 4 * level >= 1.0 else 0.0)

    return seen, at


def test_search_finds_the_longest_exposure_below_target() -> None:
    seen, at = linear_sensor(0.1)  # target 0.7 at 7 ms
    res = search_exposure(at, CAL)  # type: ignore[arg-type]
    assert res.status == "ok" and 7.0 / (1 + CAL.tolerance) <= res.exposure.exposure_ms < 7.0
    assert res.exposure.gain == 1.0 and len(seen) < 20


def test_search_stops_at_the_saturation_bound() -> None:
    _, at = linear_sensor(0.1, bright_share=0.01)  # 1 % of pixels saturate from 2.5 ms on
    res = search_exposure(at, CAL)  # type: ignore[arg-type]
    assert res.status == "ok" and 2.5 / (1 + CAL.tolerance) <= res.exposure.exposure_ms < 2.5
    assert res.saturated_fraction <= CAL.saturation_max


def test_gain_only_beyond_the_longest_exposure() -> None:
    _, at = linear_sensor(0.7 / 100.0)  # target at 100 ms effective
    no_gain = dataclasses.replace(CAL, max_exposure_ms=20.0)
    res = search_exposure(at, no_gain)  # type: ignore[arg-type]
    assert res.status == "underexposed" and res.exposure == Exposure(20.0, 1.0)
    res = search_exposure(at, dataclasses.replace(no_gain, max_gain=8.0))  # type: ignore[arg-type]
    assert res.status == "ok" and res.exposure.exposure_ms == 20.0 and 4.7 < res.exposure.gain < 5.0


def test_too_bright_at_the_shortest_exposure_is_reported() -> None:
    _, at = linear_sensor(1e4, bright_share=0.5)
    res = search_exposure(at, CAL)  # type: ignore[arg-type]
    assert res.status == "saturated" and res.exposure.exposure_ms == CAL.min_exposure_ms


def test_measure_reads_percentile_and_saturation() -> None:
    frame = np.full((3, 10, 10), 16, np.uint16)
    frame[1, :, :5] = 4095  # half the pixels saturated in one colour
    m = measure(frame, 16.0, 4095, 50.0)
    assert m.saturated_fraction == pytest.approx(0.5) and 0 <= m.level <= 1


def test_flat_gain_undoes_vignetting() -> None:
    """Frames of a specimen under a radial fall-off: the gain map flattens the fall-off, not the specimen."""
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[:128, :128]
    vignette = 1.0 - 0.3 * ((yy - 64) ** 2 + (xx - 64) ** 2) / 64**2 / 2
    frames = [np.rint(16 + 3000 * vignette * rng.uniform(0.9, 1.0, (3, 128, 128))).astype(np.uint16)
              for _ in range(8)]
    gain = flat_gain(frames, 16.0, 63)
    flattened = vignette * gain
    inner = flattened[:, 16:-16, 16:-16]
    assert inner.std() / inner.mean() < 0.02 < vignette[16:-16, 16:-16].std() / vignette[16:-16, 16:-16].mean()


@pytest.fixture(scope="module")
def bench() -> Iterator[tuple[LedArray, SimCamera, StackRecipe]]:
    with open_led_array("sim://thesis-43") as led:
        cam = SimCamera(led.emulator, VirtualBenchConfig(field_size_px=(96, 96), seed=3, wbc_per_mm2=1500.0))  # type: ignore[arg-type]
        try:
            yield led, cam, resolve_recipe("full-nohe", led.geometry())
        finally:
            cam.close()


@pytest.fixture(scope="module")
def calibration(bench: tuple[LedArray, SimCamera, StackRecipe]) -> Calibration:
    led, cam, recipe = bench
    return calibrate(led, cam, recipe, CAL)


def test_virtual_bench_calibration(calibration: Calibration, bench: tuple[LedArray, SimCamera, StackRecipe]) -> None:
    _, _, recipe = bench
    assert list(calibration.channels) == [c.name for c in recipe.channels]
    g = recipe.geometry
    bright = [calibration.channels[c.name].exposure.effective_ms for c in recipe.channels
              if c.led is None or g.is_brightfield(c.led)]
    dark = {c.led: calibration.channels[c.name].exposure.effective_ms for c in recipe.channels
            if c.led is not None and not g.is_brightfield(c.led)}
    assert len(dark) == 30 and np.median(list(dark.values())) > 3 * np.median(bright)
    # past the NA the scattered light falls with angle: every darkfield LED above 30° needs longer than any
    # brightfield one (just above the NA, 24.5°, the bright edges of red cells still light ~0.8 ms exposures)
    assert min(ms for i, ms in dark.items() if g.led(i).angle_deg > 30) > max(bright)
    assert max(dark.values()) > 10 * max(bright)
    for name, c in calibration.channels.items():
        assert c.status == "ok", name
        assert c.saturated_fraction <= CAL.saturation_max, name
        assert 0.6 <= c.level < CAL.target_fraction, name  # reaches the target within the search's tolerance
    assert sorted(calibration.flat_field) == sorted(c.name for c in recipe.channels if c.led is None
                                                    or g.is_brightfield(c.led))
    for gain in calibration.flat_field.values():  # the simulator's illumination is even: gains near 1
        assert gain.shape == (3, 96, 96) and 0.85 < gain.min() <= gain.max() < 1.15  # specimen residue: a few %


def test_file_round_trips(calibration: Calibration, bench: tuple[LedArray, SimCamera, StackRecipe],
                          tmp_path: Path) -> None:
    path = write_calibration(calibration, tmp_path / "cal.json")
    back = load_calibration(path, bench[2])
    assert back.exposures() == calibration.exposures() and back.channels == calibration.channels
    assert sorted(back.flat_field) == sorted(calibration.flat_field)
    for k, v in calibration.flat_field.items():
        np.testing.assert_array_equal(back.flat_field[k], v)
    assert len(back.id) == 12 and back.id == load_calibration(path).id
    assert json.loads(path.read_text())["flat_field"] == "cal.flat.npz"


def test_acquisition_captures_with_the_calibration(calibration: Calibration,
                                                   bench: tuple[LedArray, SimCamera, StackRecipe]) -> None:
    led, cam, recipe = bench
    request = FieldRequest("s", 0, (0.0, 0.0))
    stack = Acquirer(led, cam, recipe, AcquisitionConfig(), calibration=calibration).capture(request)
    assert stack.calibration_id == calibration.id
    assert {p.name: p.exposure for p in stack.planes} == calibration.exposures()
    i = [p.name for p in stack.planes].index("led9:low")
    halved = dict(calibration.channels)
    halved["led9:low"] = dataclasses.replace(halved["led9:low"], exposure=Exposure(
        calibration.channels["led9:low"].exposure.exposure_ms / 2))
    short = Acquirer(led, cam, recipe, AcquisitionConfig(),
                     calibration=dataclasses.replace(calibration, channels=halved)).capture(request)
    signal = [float(s.pixels[i].astype(np.float64).mean()) - s.black_level for s in (stack, short)]
    assert signal[1] / signal[0] == pytest.approx(0.5, abs=0.03)  # half the exposure, half the signal
    np.testing.assert_array_equal(short.pixels[0], stack.pixels[0])  # the other planes unchanged


def test_daemon_loads_the_file_and_records_it(calibration: Calibration, tmp_path: Path, tiny_model: Path) -> None:
    from tests.edge.device.test_app import run_scan

    path = write_calibration(calibration, tmp_path / "cal.json")
    cfg = bench_config(tiny_model, calibration=CalibrationConfig(path=str(path)),
                       virtual_bench=VirtualBenchConfig(field_size_px=(96, 96), seed=3, wbc_per_mm2=1500.0))
    msgs, _, status = run_scan(cfg, [0])
    header = next(m.header for m in msgs if "cell_ids" in m.header)
    cal_id = load_calibration(path).id
    assert header["exposure"]["calibration_id"] == cal_id and status["calibration"]["id"] == cal_id
    assert header["exposure"]["exposure_ms"] == [c.exposure.exposure_ms for c in calibration.channels.values()]


def test_bad_files_are_refused(calibration: Calibration, bench: tuple[LedArray, SimCamera, StackRecipe],
                               tmp_path: Path, tiny_model: Path) -> None:
    recipe = bench[2]
    path = write_calibration(calibration, tmp_path / "cal.json")
    doc = json.loads(path.read_text())

    def refused(match: str, text: str, against: StackRecipe | None = recipe) -> None:
        bad = tmp_path / "bad.json"
        bad.write_text(text)
        with pytest.raises(ConfigError, match=match):
            load_calibration(bad, against)

    refused("invalid JSON", "{")
    refused("expected format", json.dumps({"bf": {"exposure_ms": 1.0}}))
    refused("made for recipe", json.dumps(doc | {"recipe": {"id": "le8", "hash": "0" * 16}}))
    refused("every channel", json.dumps(doc | {"channels": {"bf": doc["channels"]["bf"]}, "flat_field": ""}))
    neg = {**doc["channels"], "led3": {"exposure_ms": -1.0, "gain": 1.0}}
    refused("exposure_ms > 0", json.dumps(doc | {"channels": neg}))
    np.savez(tmp_path / "odd.npz", bf=np.ones((3, 8, 8), np.float32), led0=np.ones((3, 9, 9), np.float32))
    refused("all of one shape", json.dumps(doc | {"flat_field": "odd.npz"}))
    with pytest.raises(ConfigError, match="cannot read"):
        load_calibration(tmp_path / "missing.json")
    other = tmp_path / "other.json"
    other.write_text(json.dumps(doc | {"recipe": {"id": "le8", "hash": "0" * 16}, "flat_field": ""}))
    with pytest.raises(ConfigError, match="made for recipe"):  # the daemon refuses it at build time
        build_bench_pipeline(bench_config(tiny_model, calibration=CalibrationConfig(path=str(other))))
    with pytest.raises(ConfigError, match=r"acquisition\.calibration: unknown key"):  # one source of exposures
        config_from_dict({"model": {"onnx": "m.onnx"}, "acquisition": {"calibration": "old.json"}})
    with pytest.raises(ConfigError, match=r"calibration\.flat_smooth_px"):
        config_from_dict({"model": {"onnx": "m.onnx"}, "calibration": {"flat_smooth_px": 8}})
