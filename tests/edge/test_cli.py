from __future__ import annotations

import json
from pathlib import Path

import pytest

from edge.bench.daemon import build_bench_pipeline
from edge.cli import main
from edge.client import ControlClient
from edge.device.config import EdgeConfig
from tests.edge.conftest import bench_toml

pytestmark = pytest.mark.usefixtures("keep_signal_handlers")  # `run` installs SIGINT/SIGTERM handlers


def test_status_and_watch_against_a_running_daemon(tiny_config: EdgeConfig, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    pipe = build_bench_pipeline(tiny_config).start()
    try:
        assert main(["status", "--endpoint", pipe.control.endpoint, "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["state"] == "idle"
        with ControlClient(pipe.control.endpoint) as ctl:
            # the watcher subscribes after this call; cells of later fields still reach it
            ctl.call("start_scan", fields=[{"field_id": i, "stage_um": [0, 0]} for i in range(6)])
        assert main(["watch", "--out", str(tmp_path), "--endpoint", pipe.publisher.endpoint, "--count", "1",
                     "--json"]) == 0
        report = json.loads(capsys.readouterr().out)
        assert report["cells"] >= 1 and (tmp_path / "gallery.png").stat().st_size > 0
    finally:
        pipe.shutdown()


def test_run_exits_when_the_autostarted_scan_is_done(tiny_model: Path, tmp_path: Path) -> None:
    cfg = bench_toml(tmp_path / "edge.toml", tiny_model, "cli-test")
    assert main(["run", "--config", str(cfg), "--fields", "1", "--exit-when-done"]) == 0


def test_bad_config_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text("[model]\nonnx = 'x.onnx'\nwat = 1\n")
    assert main(["run", "--config", str(cfg)]) == 2
    assert "model.wat: unknown key" in capsys.readouterr().err


def test_calibrate_writes_the_file_the_daemon_loads(tiny_model: Path, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    from edge.device.calibration import load_calibration
    from edge.device.config import load_config

    cfg = bench_toml(tmp_path / "d.toml", tiny_model, "cal-cli")
    cfg.write_text(cfg.read_text() + f'[calibration]\npath = "{tmp_path / "cal.json"}"\nflat_frames = 2\n')
    assert main(["calibrate", "--config", str(cfg), "--json"]) == 0  # the recipe of the configured model
    res = json.loads(capsys.readouterr().out)
    assert res["recipe"] == "full-nohe" and len(res["channels"]) == 44 and len(res["flat_field"]) == 14
    assert res["id"] == load_calibration(tmp_path / "cal.json").id
    loaded = load_config(cfg)
    pipe = build_bench_pipeline(loaded)
    try:
        assert pipe.status()["calibration"]["id"] == res["id"]
    finally:
        pipe.shutdown()
    assert main(["calibrate", "--config", str(bench_toml(tmp_path / "e.toml", tiny_model, "x"))]) == 2
    assert "no output file" in capsys.readouterr().err


DEFAULT_BUNDLE = Path(__file__).resolve().parents[2] / "models" / "default.stainless"
FAST_BUNDLE = DEFAULT_BUNDLE.with_name("fast.stainless")  # the shipped student: the same command at 1/5 the cost


@pytest.mark.timeout(120)
def test_profile_reports_stages_backend_table_and_device(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["profile", "--bundle", str(FAST_BUNDLE), "--fields", "2", "--batch", "1,2", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["device"]["cpu"]["model"] and "onnxruntime" in res["device"]["versions"]
    stages = {"qc_ms", "detect_ms", "crop_ms", "process_cpu_ms", "inference_ms", "end_to_sent_ms"}
    assert stages <= set(res["stages_ms"])
    assert res["process_cpu_p50_ms"] > 0 and res["cpu_ms_per_cell"]["backend_alone"] > 0
    assert [r["batch"] for r in res["backend"]["batches"]] == [1, 2]
    assert res["cells"] > 0 and res["cells_received"] == res["cells"]
    assert res["ratio_pipeline_to_backend"] > 0 and res["latency"]["capture_end_to_sent_p50_ms"] > 0


@pytest.mark.timeout(180)
def test_profile_shows_what_openvino_runs_with(capsys: pytest.CaptureFixture[str]) -> None:
    from edge.cli import _profile_text

    assert main(["profile", "--bundle", str(FAST_BUNDLE), "--backend", "openvino", "--threads", "1", "--fields",
                 "1", "--batch", "1", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    props = res["backend"]["plugin_properties"]
    assert props["INFERENCE_NUM_THREADS"] == "1" and props["ENABLE_CPU_PINNING"] == "False"
    assert props["INFERENCE_PRECISION_HINT"] == "f32"
    layers = res["backend"]["batches"][0]["layers_ms_per_cell"]  # where the batch's time goes
    assert any(k.startswith("Convolution (") for k in layers) and all(v > 0 for v in layers.values())
    text = _profile_text(res)  # what the command prints without --json
    assert "runs with: INFERENCE_PRECISION_HINT=f32, " in text and "batch buffers" in text and "at fields 1: " in text
    assert "where batch 1's time goes, ms per cell: Convolution (" in text


def test_profile_rejects_a_bad_batch_list(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["profile", "--bundle", str(DEFAULT_BUNDLE), "--batch", "0,8"]) == 2
    assert "--batch" in capsys.readouterr().err
