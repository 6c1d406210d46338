"""Daemon faults on the virtual bench: the LED controller lost mid-stack, a stage thread dying.

The controller is served on TCP so that, like a USB controller that resets, it can come back: the
link reconnects, the field is captured again from the start and published whole — identical to an
undisturbed capture — or, when the controller stays away, reported failed and never half-published.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edge.bench.daemon import build_bench_pipeline
from edge.client import ControlClient, Event, FieldSummary, StainedCell, Subscriber
from edge.device.app import Pipeline
from edge.device.config import AcquisitionConfig, EdgeConfig
from firmware_bridge.client import IlluminateLedArray
from firmware_bridge.emulator import Emulator, EmulatorServer
from firmware_bridge.link import LinkConfig
from firmware_bridge.rigs import get_profile
from tests.edge.conftest import bench_config, bench_toml

LINK = LinkConfig(timeout_s=2.0, backoff_initial_s=0.02, backoff_max_s=0.2, reconnect_attempts=5)
SEQUENCE = AcquisitionConfig(mode="sequence", sequence_delay_ms=5)


@pytest.fixture
def tcp_led() -> Iterator[tuple[IlluminateLedArray, EmulatorServer]]:
    emu = Emulator(get_profile("thesis-43"))
    server = emu.serve_tcp()
    arr = IlluminateLedArray(server.url, config=LINK, emulator=emu)
    try:
        yield arr, server
    finally:
        arr.close()
        server.close()


def scan_field(pipe: Pipeline, sub: Subscriber, ctl: ControlClient, field_id: int) -> tuple[dict[str, Any],
                                                                                                list[StainedCell]]:
    """Scan one field; its summary and the cells published for it (every message up to the summary)."""
    ctl.call("start_scan", slide_id="s1", fields=[{"field_id": field_id, "stage_um": [0.0, 0.0]}])
    assert pipe.wait_idle(timeout=60.0)
    cells: list[StainedCell] = []
    for _ in range(1000):  # bounded: a field has far fewer cells
        m = sub.receive(timeout=10.0)
        assert m is not None, "the field summary never arrived"
        if isinstance(m, StainedCell):
            cells.append(m)
        if isinstance(m, FieldSummary):
            return m.header, cells
    raise AssertionError("no field summary among 1000 messages")


def assert_same_cells(a: list[StainedCell], b: list[StainedCell]) -> None:
    assert len(a) == len(b) >= 1
    for x, y in zip(a, b, strict=True):
        assert x.header["center_px"] == y.header["center_px"] and x.header["cell_index"] == y.header["cell_index"]
        assert np.array_equal(x.unstained, y.unstained) and np.array_equal(x.stained, y.stained)


@pytest.mark.parametrize(("acq", "faults"), [
    (AcquisitionConfig(mode="host"), [("l", 1), ("l", 5), ("l", 30)]),  # lost at the k-th LED command
    (SEQUENCE, [("rseq", 3), ("rseq", 20), ("rseq", 43)]),  # lost after k of 44 patterns
])
def test_controller_lost_mid_stack_reconnects_and_publishes_the_field_whole(
        tiny_model: Path, tcp_led: tuple[IlluminateLedArray, EmulatorServer], acq: AcquisitionConfig,
        faults: list[tuple[str, int]]) -> None:
    led, server = tcp_led
    pipe = build_bench_pipeline(bench_config(tiny_model, acquisition=acq), led=led).start()
    try:
        with Subscriber(pipe.publisher.endpoint) as sub, ControlClient(pipe.control.endpoint, timeout=5.0) as ctl:
            assert pipe.publisher.wait_for_subscribers(4, timeout=5.0)
            clean, clean_cells = scan_field(pipe, sub, ctl, 2)
            assert clean["status"] == "ok" and clean["attempts"] == 1
            for command, k in faults:
                reconnects = led.link.reconnects
                if command == "l":
                    server.vanish_on("l", nth=k + 1)  # k planes' LEDs were lit, the next command is lost
                else:
                    server.vanish_after_patterns(k)
                summary, cells = scan_field(pipe, sub, ctl, 2)
                assert (summary["status"], summary["attempts"]) == ("ok", 2), (command, k)
                assert led.link.reconnects == reconnects + 1
                assert summary["cells"] == clean["cells"] == len(cells)
                assert_same_cells(cells, clean_cells)
    finally:
        pipe.shutdown()


@pytest.mark.parametrize(("acq", "k"), [(AcquisitionConfig(mode="host", retries=1), 7),
                                        (AcquisitionConfig(mode="sequence", sequence_delay_ms=5, retries=1), 12)])
def test_controller_gone_for_good_mid_stack_is_reported_not_half_published(tiny_model: Path,
                                                                           acq: AcquisitionConfig, k: int) -> None:
    cfg = bench_config(tiny_model, acquisition=acq)
    pipe = build_bench_pipeline(cfg)
    try:
        server = pipe.led._server  # type: ignore[attr-defined]  # sim:// serves on a pty: no way back
        if acq.mode == "host":
            server.vanish_on("l", nth=k + 1)
        else:
            server.vanish_after_patterns(k)
        pipe.start()
        with Subscriber(pipe.publisher.endpoint) as sub, ControlClient(pipe.control.endpoint, timeout=5.0) as ctl:
            assert pipe.publisher.wait_for_subscribers(4, timeout=5.0)
            summary, cells = scan_field(pipe, sub, ctl, 0)
    finally:
        pipe.shutdown()
    assert cells == [] and summary["status"] == "failed" and "2 attempts" in summary["error"]


def _fail_processing(pipe: Pipeline, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise ZeroDivisionError("injected into processing")
    monkeypatch.setattr("edge.device.app.process_stack", broken)


def _fail_inference(pipe: Pipeline, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(x: object) -> None:
        raise MemoryError("injected into inference")
    monkeypatch.setattr(pipe.runner, "infer", broken)


def _fail_publishing(pipe: Pipeline, monkeypatch: pytest.MonkeyPatch) -> None:
    publish = pipe.publisher.publish_many

    def broken(topic: str, *args: Any, **kwargs: Any) -> list[bool]:
        if topic == "cell":
            raise KeyError("injected into publishing")
        return publish(topic, *args, **kwargs)
    monkeypatch.setattr(pipe.publisher, "publish_many", broken)


@pytest.mark.parametrize(("stage", "inject"), [("edge-process", _fail_processing),
                                               ("edge-infer", _fail_inference),
                                               ("edge-publish", _fail_publishing)])
def test_a_dying_stage_is_reported_and_stops_the_daemon(tiny_config: EdgeConfig, monkeypatch: pytest.MonkeyPatch,
                                                        stage: str, inject: Any) -> None:
    pipe = build_bench_pipeline(tiny_config)
    inject(pipe, monkeypatch)
    pipe.start()
    try:
        with Subscriber(pipe.publisher.endpoint) as sub, ControlClient(pipe.control.endpoint, timeout=5.0) as ctl:
            assert pipe.publisher.wait_for_subscribers(4, timeout=5.0)
            ctl.call("start_scan", slide_id="s1", fields=[{"field_id": f, "stage_um": [0, 0]} for f in (0, 1, 2)])
            assert pipe.failed.wait(30.0), "the stage failure was not noticed"
            event = None
            for _ in range(1000):  # bounded
                m = sub.receive(timeout=10.0)
                assert m is not None, "no stage_failed event"
                if isinstance(m, Event) and m.header["event"] == "stage_failed":
                    event = m.header
                    break
            assert event is not None and stage in event["message"] and "injected" in event["message"]
            status = ctl.call("status")
            assert status["state"] == "failed" and stage in status["failure"]
    finally:
        pipe.shutdown(timeout=10.0)
    assert not [t for t in pipe._threads if t.is_alive()]  # every stage ended: nothing hangs


def test_run_exits_non_zero_when_a_stage_dies(tiny_model: Path, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    import signal

    from edge.cli import main

    _fail_processing(None, monkeypatch)  # type: ignore[arg-type]
    cfg = bench_toml(tmp_path / "edge.toml", tiny_model, "fault-test")
    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        assert main(["run", "--config", str(cfg), "--fields", "2"]) == 1  # no --exit-when-done: the failure ends it
    finally:
        for s, h in saved.items():
            signal.signal(s, h)
