"""End to end on the virtual bench: emulator over a real pty, sim camera, ONNX Runtime, ZeroMQ."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from core.config import ConfigError
from edge.bench.daemon import build_bench_pipeline
from edge.client import ControlClient, Event, FieldSummary, StainedCell, Subscriber
from edge.device.config import AcquisitionConfig, BatchingConfig, CropConfig, EdgeConfig, VirtualBenchConfig
from edge.device.crops import crop_window
from edge.device.errors import ControlError
from tests.edge.conftest import PATCH, bench_config

FIELD_PX = 128  # bench_config's virtual-bench field


def run_scan(cfg: EdgeConfig, fields: list[int], *, prepare: Any = None) -> tuple[list[Any], Subscriber, Any]:
    pipe = build_bench_pipeline(cfg)
    try:
        if prepare is not None:
            prepare(pipe)
        pipe.start()
        with Subscriber(pipe.publisher.endpoint) as sub, ControlClient(pipe.control.endpoint, timeout=5.0) as ctl:
            assert pipe.publisher.wait_for_subscribers(4, timeout=5.0)
            res = ctl.call("start_scan", slide_id="s1",
                           fields=[{"field_id": f, "stage_um": [100.0 * f, 0.0]} for f in fields])
            assert res["queued"] == len(fields)
            assert pipe.wait_idle(timeout=60.0)
            status = ctl.call("status")
            msgs = []
            field_count = 0
            while field_count < len(fields):
                m = sub.receive(timeout=10.0)
                assert m is not None, "a field summary never arrived"
                msgs.append(m)
                field_count += isinstance(m, FieldSummary)
            return msgs, sub, status
    finally:
        pipe.shutdown()


def test_every_detected_cell_arrives_exactly_once(tiny_config: EdgeConfig) -> None:
    msgs, sub, status = run_scan(tiny_config, [0, 1, 2])
    cells = [m for m in msgs if isinstance(m, StainedCell)]
    fields = [m for m in msgs if isinstance(m, FieldSummary)]
    announced = [cid for f in fields for cid in f.header["cell_ids"]]
    received = [c.cell_id for c in cells]
    assert len(fields) == 3 and all(f.header["status"] == "ok" for f in fields)
    assert sorted(received) == sorted(announced) and len(set(received)) == len(received)
    assert len(received) >= 3  # 1500 WBC/mm² on 3 fields of 37.5 µm
    assert sub.gaps["cell"] == 0 and sub.invalid == 0
    for c in cells:
        h = c.header
        assert c.stained.shape == (PATCH, PATCH, 3)
        assert c.unstained is not None and c.unstained.shape == (PATCH, PATCH, 3)
        assert h["schema"] == 1 and h["daemon_id"] == "test-daemon" and h["recipe"]["id"] == "full-nohe"
        assert h["slide_id"] == "s1" and h["field_cells"] == sum(1 for x in received if x.startswith(
            f"s1/{h['scan_id']}/{h['field_id']}/"))
        assert h["t"]["capture_start"] <= h["t"]["capture_end"] <= h["t"]["inference_done"] <= h["t_sent"]
        assert h["position_um"][0] >= h["stage_um"][0]
        fid, limits = h["fidelity"], tiny_config.fidelity
        assert -1 <= fid["ssim"] <= 1 and fid["chi2"] >= 0
        assert fid["suspect"] == (fid["ssim"] < limits.ssim_min or fid["chi2"] > limits.chi2_max)
        assert ("suspect" in h["flags"]) == fid["suspect"]
        x0, y0 = crop_window(tuple(h["center_px"]), PATCH)  # padded exactly when the crop leaves the field
        assert ("border" in h["flags"]) == (min(x0, y0) < 0 or max(x0, y0) + PATCH > FIELD_PX)
    assert [c.seq for c in cells] == sorted(c.seq for c in cells)
    assert status["counters"]["cells_sent"] == len(cells)


@pytest.mark.parametrize("raw_input", ["on", "off"])
def test_each_cell_is_stained_from_its_own_input_while_batch_buffers_are_reused(
        tiny_model: Path, monkeypatch: pytest.MonkeyPatch, raw_input: bool) -> None:
    """Two batch buffers of two cells for many cells: every published stain is the model's output on that
    cell's own crop (no buffer written while it was inferred, no cell's input in another's row), whether the
    buffers hold camera counts normalised inside the model (``raw_input``) or float32 inputs."""
    import edge.device.app as app_module
    from edge.device.backends.onnxruntime import OnnxRuntimeBackend
    from edge.device.cell_jobs import FieldResult
    from edge.device.crops import normalise
    from edge.device.publisher import rgb8_hwc

    cfg = bench_config(tiny_model, batching=BatchingConfig(max_batch=2, max_queue_delay_ms=5.0, queue_size=2))
    cfg = cfg.replace(model=dataclasses.replace(cfg.model, raw_input=raw_input))
    results: list[FieldResult] = []
    raws: dict[tuple[tuple[str, int, int], int], Any] = {}  # the daemon lets the stacks go once the cells are queued
    process = app_module.process_stack

    def recording(*args: Any, **kwargs: Any) -> FieldResult:
        results.append(process(*args, **kwargs))
        raws.update({(j.key, j.index): j.raw.copy() for j in results[-1].jobs})
        return results[-1]

    monkeypatch.setattr(app_module, "process_stack", recording)
    pipes: list[Any] = []
    msgs, _, status = run_scan(cfg, [0, 1, 2, 3], prepare=pipes.append)
    cells = {m.cell_id: m for m in msgs if isinstance(m, StainedCell)}
    jobs = {f"s1/{j.key[2]}/{j.key[1]}/{j.index}": j for r in results for j in r.jobs}
    assert len(cells) == len(jobs) >= 6 and status["batching"]["buffers"] <= 2
    assert pipes[0].batcher.dtype == (np.uint16 if raw_input == "on" else np.float32)
    assert status["model"]["raw_input"] == (raw_input == "on")
    backend = OnnxRuntimeBackend(Path(cfg.model.onnx), threads=1)  # the same model, one cell at a time
    for cid, job in jobs.items():
        expected = rgb8_hwc(backend.infer(normalise(raws[job.key, job.index], pipes[0].norm)[None])[0])
        got = cells[cid].stained.astype(np.int16)
        assert np.abs(got - expected).max() <= 1, cid  # batch of 1 vs 2: float rounding at most


def test_firmware_sequenced_mode_matches_host_paced(tiny_model: Path) -> None:
    """Same field, same planes in the same order, so the same pixels: identical crops and stains."""
    cfg = bench_config(tiny_model)
    host, _, _ = run_scan(cfg, [1])
    seq, _, _ = run_scan(cfg.replace(acquisition=AcquisitionConfig(mode="sequence", sequence_delay_ms=5)), [1])
    cells = [[m for m in ms if isinstance(m, StainedCell)] for ms in (host, seq)]
    assert len(cells[0]) >= 1 and [c.cell_id for c in cells[0]] == [c.cell_id for c in cells[1]]
    for a, b in zip(*cells, strict=True):
        assert np.array_equal(a.unstained, b.unstained) and np.array_equal(a.stained, b.stained)
        assert a.header["center_px"] == b.header["center_px"]


def test_camera_timeout_is_retried(tiny_config: EdgeConfig) -> None:
    def inject(pipe: Any) -> None:
        pipe.camera.fault_timeouts = 1

    msgs, _, _status = run_scan(tiny_config, [0], prepare=inject)
    f = next(m for m in msgs if isinstance(m, FieldSummary))
    assert f.header["status"] == "ok" and f.header["attempts"] == 2


def test_camera_failing_every_attempt_reports_the_field(tiny_config: EdgeConfig) -> None:
    def inject(pipe: Any) -> None:
        pipe.camera.fault_timeouts = 10

    msgs, _, _ = run_scan(tiny_config, [0], prepare=inject)
    assert not [m for m in msgs if isinstance(m, StainedCell)]
    f = next(m for m in msgs if isinstance(m, FieldSummary))
    assert f.header["status"] == "failed" and "attempts" in f.header["error"]
    assert any(isinstance(m, Event) and m.header["event"] == "field_failed" for m in msgs)


def test_led_controller_vanishing_mid_stack_is_not_half_published(tiny_config: EdgeConfig) -> None:
    def inject(pipe: Any) -> None:
        led = pipe.led
        led._server.die_on_next_command()  # the pty closes after the next command it receives

    cfg = tiny_config.replace(acquisition=AcquisitionConfig(retries=0))
    msgs, _, _ = run_scan(cfg, [0], prepare=inject)
    assert not [m for m in msgs if isinstance(m, StainedCell)]
    assert [m.header["status"] for m in msgs if isinstance(m, FieldSummary)] == ["failed"]


def test_nan_model_is_reported_not_published(nan_model: Path) -> None:
    msgs, _, status = run_scan(bench_config(nan_model), [0])
    assert not [m for m in msgs if isinstance(m, StainedCell)]
    f = next(m for m in msgs if isinstance(m, FieldSummary))
    assert f.header["cells"] >= 1 and f.header["cells_not_sent"] == f.header["cells"]
    events = [m.header["event"] for m in msgs if isinstance(m, Event)]
    assert "model_degraded" in events and "cells_dropped" in events
    assert status["model"]["degraded"] is True


def test_control_rejects_bad_requests_and_keeps_running(tiny_config: EdgeConfig) -> None:
    pipe = build_bench_pipeline(tiny_config).start()
    try:
        with ControlClient(pipe.control.endpoint, timeout=5.0) as ctl:
            for body in (b"\xc1", b"\x93\x01\x02\x03", b"x" * 70_000):
                reply = ctl.request_raw(body)
                assert reply["ok"] is False and reply["error"]["code"] in ("malformed", "too_large")
            with pytest.raises(ControlError) as err:
                ctl.call("reboot")
            assert err.value.code == "unknown_command"
            with pytest.raises(ControlError) as err:
                ctl.call("scan_field", field_id=-1)
            assert err.value.code == "bad_args"
            assert ctl.call("status")["state"] == "idle"
    finally:
        pipe.shutdown()


def test_config_sections_are_frozen(tiny_config: EdgeConfig) -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        tiny_config.model.onnx = "x"  # type: ignore[misc]


def test_virtual_bench_sends_darkfield_and_truth(tiny_model: Path) -> None:
    cfg = bench_config(tiny_model, crops=CropConfig(send_darkfield="led8:low"),
                       virtual_bench=VirtualBenchConfig(field_size_px=(128, 128), seed=3, wbc_per_mm2=1500.0,
                                                        send_truth=True))
    msgs, _, status = run_scan(cfg, [0, 1])
    cells = [m for m in msgs if isinstance(m, StainedCell)]
    fields = [m.header for m in msgs if isinstance(m, FieldSummary)]
    assert cells and sum(f["cells"] for f in fields) == len(cells)
    for c in cells:
        assert c.darkfield is not None and c.darkfield.shape == (PATCH, PATCH, 3) and c.darkfield.dtype.name == "uint8"
        assert c.truth is not None and c.truth.shape == (PATCH, PATCH, 3)
        assert [p["name"] for p in c.header["payloads"]] == ["stained", "unstained", "darkfield", "truth"]
        assert "truth_type" in c.header
    # the true stain is a bright background with a darker white cell in the middle
    centre = np.mean([c.truth[PATCH // 2 - 4:PATCH // 2 + 4, PATCH // 2 - 4:PATCH // 2 + 4].mean() for c in cells])
    assert centre < np.mean([c.truth.mean() for c in cells])
    for f in fields:
        assert 0 <= f["truth_found"] <= min(f["truth_cells"], f["cells"])
    typed = sum(c.header["truth_type"] is not None for c in cells)  # also cells centred beyond the edge
    assert typed >= sum(f["truth_found"] for f in fields) >= 1
    assert status["latency_ms"]["truth_ms"]["n"] == 2


def test_darkfield_channel_is_checked_against_the_recipe(tiny_model: Path) -> None:
    with pytest.raises(ConfigError, match="send_darkfield: 'led0' is not a darkfield channel"):
        build_bench_pipeline(bench_config(tiny_model, crops=CropConfig(send_darkfield="led0")))


def test_bundle_styles_arrive_as_named_stains(tiny_model: Path, tmp_path: Path) -> None:
    """A bundle with a stain style: every cell carries ``stained`` and ``stained:bluer``, the second being
    the style model applied to the first, received by a real ZeroMQ subscriber."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from tests.edge.bundle_support import bench_bundle

    key = Ed25519PrivateKey.generate()
    pub = tmp_path / "signer.pub"
    pub.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                  serialization.PublicFormat.SubjectPublicKeyInfo))
    bluer = np.array([[0.7, 0.0, 0.0], [0.0, 0.85, 0.0], [0.1, 0.1, 1.0]], np.float32)
    bundle = bench_bundle(tmp_path / "styled-1.0.0.stainless", tiny_model, key, {"bluer": bluer})
    cfg = bench_config(tiny_model)
    cfg = cfg.replace(model=dataclasses.replace(cfg.model, onnx="", bundle=str(bundle), public_key=str(pub)))
    msgs, sub, status = run_scan(cfg, [0, 1])
    cells = [m for m in msgs if isinstance(m, StainedCell)]
    assert cells and sub.invalid == 0
    for c in cells:
        assert [p["name"] for p in c.header["payloads"]] == ["stained", "stained:bluer", "unstained"]
        assert c.header["model"]["styles"] == ["bluer"] and list(c.styles) == ["bluer"]
        styled = c.styles["bluer"]
        assert styled.shape == (PATCH, PATCH, 3) and styled.dtype == np.uint8
        want = np.clip(c.stained.astype(np.float32) @ bluer.T, 0, 255)  # the style of the (rounded) stain
        assert np.abs(styled.astype(np.float32) - want).max() <= 2.0
        assert not np.array_equal(styled, c.stained)
    assert status["model"]["styles"] == ["bluer"] and status["model"]["style_failures"] == {"bluer": 0}
    assert status["latency_ms"]["style_ms"]["n"] >= 1
