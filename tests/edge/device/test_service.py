"""The daemon as a systemd service on the virtual bench: warm-up, READY, heartbeats, STOPPING."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.bench.daemon import build_bench_pipeline
from edge.device.config import EdgeConfig
from edge.device.sdnotify import Notifier
from edge.device.service import Service, status_line
from edge.device.stack import FieldRequest
from tests.edge.device.conftest import FakeSystemd


def test_ready_after_warm_up_heartbeats_then_silence_after_a_stage_failed(
        tiny_config: EdgeConfig, abstract_systemd: tuple[FakeSystemd, dict[str, str]],
        monkeypatch: pytest.MonkeyPatch) -> None:
    fake, env = abstract_systemd
    notifier = Notifier({**env, "WATCHDOG_USEC": "200000"})  # a beat at most every 0.1 s
    service = Service(build_bench_pipeline(tiny_config), notifier)
    try:
        service.start()
        assert service.warm_up_ms > 0 and service.heartbeat.interval_s == pytest.approx(0.1)
        first = fake.until("READY")
        assert first[0] == {"STATUS": "warming up"} and first[-1]["STATUS"].startswith("idle: 0 cells sent")
        for _ in range(3):  # the idle acquisition loop beats (its queue wait is 0.5 s)
            assert fake.until("WATCHDOG")[-1]["WATCHDOG"] == "1"

        def broken(*args: object, **kwargs: object) -> None:
            raise RuntimeError("injected processing bug")

        monkeypatch.setattr("edge.device.app.process_stack", broken)
        service.pipe.submit([FieldRequest("s", 0, (0.0, 0.0))])
        assert service.pipe.failed.wait(30.0)
        while fake.receive(timeout=0.3) is not None:  # drain what was sent before the failure
            pass
        assert fake.receive(timeout=1.5) is None  # 3 loop passes: silence, so systemd would restart us
        service.tick()
        assert fake.receive()["STATUS"].startswith("failed:")  # type: ignore[index]
    finally:
        service.stop()
    assert fake.until("STOPPING")[-1]["STOPPING"] == "1"


def test_status_line() -> None:
    st = {"state": "scanning", "counters": {"cells_sent": 12}, "fields_pending": 3,
          "model": {"name": "default", "version": "0.2.0", "backend": "onnxruntime-cpu", "degraded": True}}
    assert status_line(st) == ("scanning: 12 cells sent, 3 field(s) pending; model default 0.2.0 on "
                               "onnxruntime-cpu (degraded)")


def test_run_without_systemd_sends_nothing(tiny_model: Path) -> None:
    from tests.edge.conftest import bench_config

    service = Service(build_bench_pipeline(bench_config(tiny_model)), Notifier({})).start()
    try:
        assert service.pipe.heartbeat is None and not service.notifier.enabled
    finally:
        service.stop()
