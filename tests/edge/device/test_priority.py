"""The processing thread below the model in priority (edge/device/priority.py, [daemon] process_nice)."""

from __future__ import annotations

import os
import sys
import threading
import time

import pytest

from core.config import ConfigError
from edge.bench.daemon import build_bench_pipeline
from edge.device.config import DaemonConfig, EdgeConfig
from edge.device.priority import MAX_NICE, lower_thread_priority, lowered_nice
from tests.edge.device.test_app import run_scan

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread niceness is Linux's")


def test_lowered_nice_adds_and_stops_at_the_lowest_priority() -> None:
    assert lowered_nice(0, 5) == 5 and lowered_nice(-3, 5) == 2 and lowered_nice(0, 0) == 0
    assert lowered_nice(16, 5) == MAX_NICE == 19
    with pytest.raises(ValueError, match="lowering only"):
        lowered_nice(0, -1)


def test_process_nice_out_of_range_is_refused_by_name() -> None:
    with pytest.raises(ConfigError, match=r"daemon\.process_nice"):
        DaemonConfig(process_nice=20)
    with pytest.raises(ConfigError, match=r"daemon\.process_nice"):
        DaemonConfig(process_nice=-1)


def _nice(tid: int) -> int:
    return os.getpriority(os.PRIO_PROCESS, tid)


@linux_only
def test_only_the_calling_thread_is_lowered() -> None:
    main = _nice(threading.get_native_id())
    seen: dict[str, int | None] = {}

    def lower() -> None:
        before = _nice(threading.get_native_id())
        seen["returned"] = lower_thread_priority(3)
        seen["after"] = _nice(threading.get_native_id())
        seen["expected"] = lowered_nice(before, 3)
        seen["unchanged"] = lower_thread_priority(0)

    t = threading.Thread(target=lower)
    t.start()
    t.join()
    assert seen["after"] == seen["expected"] == seen["returned"]
    assert seen["unchanged"] is None
    assert _nice(threading.get_native_id()) == main  # the process's other threads keep theirs


def _thread_nice(name: str) -> int:
    t = next(t for t in threading.enumerate() if t.name == name)
    assert t.native_id is not None
    return _nice(t.native_id)


@linux_only
def test_processing_runs_below_the_model(tiny_config: EdgeConfig) -> None:
    base = _nice(threading.get_native_id())
    cfg = tiny_config.replace(daemon=DaemonConfig(id="test-daemon", status_interval_s=0.2, process_nice=4))
    pipe = build_bench_pipeline(cfg)
    try:
        pipe.start()
        deadline = time.monotonic() + 5.0
        while _thread_nice("edge-process") != lowered_nice(base, 4) and time.monotonic() < deadline:
            time.sleep(0.01)  # the loop lowers itself as it starts
        assert _thread_nice("edge-process") == lowered_nice(base, 4)
        assert {n: _thread_nice(n) for n in ("edge-infer", "edge-publish", "edge-acquire")} == dict.fromkeys(
            ("edge-infer", "edge-publish", "edge-acquire"), base)
    finally:
        pipe.shutdown()


def test_a_scan_with_processing_lowered_publishes_every_cell(tiny_config: EdgeConfig) -> None:
    from edge.client import FieldSummary, StainedCell

    cfg = tiny_config.replace(daemon=DaemonConfig(id="test-daemon", status_interval_s=0.2, process_nice=10))
    msgs, sub, status = run_scan(cfg, [0, 1, 2, 3])
    announced = sorted(cid for m in msgs if isinstance(m, FieldSummary) for cid in m.header["cell_ids"])
    received = sorted(m.cell_id for m in msgs if isinstance(m, StainedCell))
    assert len(received) >= 4 and received == announced and sub.gaps["cell"] == 0
    assert status["counters"]["cells_sent"] == len(received)


def test_opencv_runs_in_the_calling_thread_after_the_call() -> None:
    import cv2

    from edge.device.priority import opencv_in_calling_thread

    saved = cv2.getNumThreads()
    try:
        cv2.setNumThreads(2)
        assert opencv_in_calling_thread() == 2
        assert cv2.getNumThreads() == 1
    finally:
        cv2.setNumThreads(saved)
