"""The demo driver end to end: daemon and watcher as real subprocesses on ipc:// endpoints."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import cv2
import pytest

from edge.bench.demo import DemoError, DemoOptions, format_summary, run_demo
from tests.edge.conftest import PATCH


def children() -> set[int]:
    """PIDs of this process's live children (those spawned from the main thread)."""
    tid = threading.main_thread().native_id
    return {int(p) for p in Path(f"/proc/{os.getpid()}/task/{tid}/children").read_text().split()}


def demo_config(tmp_path: Path, model: Path, darkfield: str = "led8:low", pub: str = "") -> Path:
    cfg = tmp_path / "demo.toml"
    cfg.write_text(f"""
[daemon]
id = "demo-test"
status_interval_s = 0.2
[virtual_bench]
field_size_px = [128, 128]
seed = 3
wbc_per_mm2 = 1500.0
send_truth = true
[crops]
send_darkfield = "{darkfield}"
[batching]
max_batch = 4
max_queue_delay_ms = 5.0
queue_size = 16
[model]
onnx = "{model}"
patch_size = {PATCH}
threads = 1
[publisher]
endpoint = "{pub or f'ipc://{tmp_path}/pub'}"
linger_ms = 0
[control]
endpoint = "ipc://{tmp_path}/ctl"
""")
    return cfg


def test_demo_writes_a_four_panel_gallery_and_a_consistent_summary(tiny_model: Path, tmp_path: Path) -> None:
    before = children()
    out = tmp_path / "out"
    s = run_demo(DemoOptions(demo_config(tmp_path, tiny_model), tiny_model, fields=2, out=out, keep=64,
                             timeout_s=120.0))
    assert children() == before
    assert s["fields"] == 2 and s["gaps"] == {}
    assert s["cells"] == s["cells_found"] >= 1 and 0 <= s["cells_suspect"] <= s["cells"]
    assert 1 <= s["cells_present_found"] <= min(s["cells_present"], s["cells_found"])
    ssim = s["ssim_stain_vs_truth"]
    assert ssim["n"] == s["cells"] == sum(v["n"] for v in ssim["by_type"].values())
    # the mean over every cell is the cell-weighted mean of the per-type means (each rounded to 4 decimals)
    assert ssim["mean"] == pytest.approx(sum(v["mean"] * v["n"] for v in ssim["by_type"].values()) / ssim["n"],
                                         abs=2e-4)
    assert {"capture", "process", "truth", "inference", "end_to_received"} <= set(s["latency_ms"])
    img = cv2.imread(str(out / "gallery.png"))
    tile_w = 4 * PATCH * 2 + 4  # brightfield | darkfield | stain | truth at scale 2, 2 px margins
    assert img is not None and img.shape[1] == 4 * tile_w  # 16 // 4 panels = 4 tiles per row
    rows = -(-s["cells"] // 4)
    assert img.shape[0] == 18 + rows * (PATCH * 2 + 16 + 4)  # header, then tiles with captions
    assert "white cells found" in format_summary(s)
    assert (out / "daemon.log").read_text().count("shutting down") == 1


def test_a_daemon_that_cannot_start_is_reported_and_reaped(tiny_model: Path, tmp_path: Path) -> None:
    before = children()
    with pytest.raises(DemoError, match="exited with code 2 during start-up") as err:
        run_demo(DemoOptions(demo_config(tmp_path, tiny_model, darkfield="led0"), tiny_model, fields=1,
                             out=tmp_path / "out", timeout_s=60.0))
    assert "send_darkfield" in str(err.value)
    assert children() == before


def test_a_missing_model_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DemoError, match="pass --model"):
        run_demo(DemoOptions(model=tmp_path / "none.stainless", out=tmp_path))


def test_a_busy_endpoint_fails_fast_with_a_clear_error(tiny_model: Path, tmp_path: Path) -> None:
    import zmq

    ctx = zmq.Context()
    squatter = ctx.socket(zmq.PUB)
    squatter.bind("tcp://127.0.0.1:*")  # (a second bind to an ipc:// path would take it over silently)
    cfg = demo_config(tmp_path, tiny_model, pub=squatter.getsockopt_string(zmq.LAST_ENDPOINT))
    try:
        with pytest.raises(DemoError, match="cannot bind"):
            run_demo(DemoOptions(cfg, tiny_model, fields=1, out=tmp_path / "out", timeout_s=60.0))
    finally:
        squatter.close(linger=0)
        ctx.term()
