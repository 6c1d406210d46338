"""No lost cells, end to end on the virtual bench: spool, ``replay``, restarts of subscriber and daemon."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from edge.bench.daemon import build_bench_pipeline
from edge.client import ControlClient, FieldSummary, StainedCell, Subscriber
from edge.device.config import EdgeConfig
from edge.device.errors import AcquisitionError, ControlError
from edge.device.opsconfig import SpoolConfig
from edge.device.stack import FieldRequest, Stack
from tests.edge.conftest import bench_config
from tests.edge.device.test_app import run_scan


class Gate:
    """A stack source that holds fields from ``hold_from`` on until :attr:`open` is set."""

    def __init__(self, inner: Any, hold_from: int) -> None:
        self.inner, self.hold_from, self.open = inner, hold_from, threading.Event()

    def capture(self, request: FieldRequest) -> Stack:
        if request.field_id >= self.hold_from and not self.open.wait(60):
            raise AcquisitionError("the test never opened the gate")
        stack: Stack = self.inner.capture(request)
        return stack


def fields(ids: range) -> list[dict[str, Any]]:
    return [{"field_id": f, "stage_um": [100.0 * f, 0.0]} for f in ids]


def read_until_fields(sub: Subscriber, want: set[int], cells: list[StainedCell], summaries: list[FieldSummary]
                      ) -> None:
    """Receive until the field summaries of ``want`` arrived; cells and summaries are appended."""
    while not want <= {s.header["field_id"] for s in summaries}:
        m = sub.receive(timeout=30.0)
        assert m is not None, f"fields {sorted(want - {s.header['field_id'] for s in summaries})} never arrived"
        if isinstance(m, StainedCell):
            cells.append(m)
        elif isinstance(m, FieldSummary):
            summaries.append(m)


def test_a_subscriber_killed_mid_scan_recovers_every_missed_cell(tiny_model: Path, tmp_path: Path) -> None:
    cfg = bench_config(tiny_model, spool=SpoolConfig(path=str(tmp_path / "spool.db")))
    pipe = build_bench_pipeline(cfg)
    gate = Gate(pipe.source, hold_from=2)
    pipe.source = gate
    pipe.start()
    try:
        with ControlClient(pipe.control.endpoint, timeout=5.0) as ctl:
            a_cells: list[StainedCell] = []
            a_fields: list[FieldSummary] = []
            with Subscriber(pipe.publisher.endpoint, topics=("cell", "field"), control=pipe.control.endpoint) as a:
                assert pipe.publisher.wait_for_subscribers(2, 5.0)
                ctl.call("start_scan", slide_id="s1", fields=fields(range(6)))
                read_until_fields(a, {0, 1}, a_cells, a_fields)
                resume = {"cell": a_cells[-1].seq + 1, "field": int(a_fields[-1].header["seq"]) + 1}
            assert ctl.call("status")["fields_pending"] >= 4  # killed mid-scan: fields 2..5 held at the gate
            gate.open.set()
            assert pipe.wait_idle(60.0)  # fields 2..5 published while nobody listens
            b_cells: list[StainedCell] = []
            b_fields: list[FieldSummary] = []
            with Subscriber(pipe.publisher.endpoint, control=pipe.control.endpoint, start=resume) as b:
                ctl.call("start_scan", slide_id="s1", fields=fields(range(6, 8)))  # and more, live
                read_until_fields(b, set(range(2, 8)), b_cells, b_fields)
                assert b.recovered["cell"] >= 1 and b.gaps["cell"] == 0 and b.sequence.replay_errors == {}
        summaries = a_fields + b_fields
        assert sorted(s.header["field_id"] for s in summaries) == list(range(8))
        detected = [cid for s in summaries for cid in s.header["cell_ids"]]
        received = [c.cell_id for c in a_cells + b_cells]
        assert len(received) == len(set(received)) == len(detected) and set(received) == set(detected)
        assert [c.seq for c in b_cells] == list(range(resume["cell"], resume["cell"] + len(b_cells)))
        assert len([c for c in b_cells if c.header["field_id"] in range(2, 6)]) >= 1
    finally:
        gate.open.set()
        pipe.shutdown()


def test_sequence_numbers_continue_across_a_daemon_restart(tiny_model: Path, tmp_path: Path) -> None:
    cfg = bench_config(tiny_model, spool=SpoolConfig(path=str(tmp_path / "spool.db")))
    _msgs, _sub, first = run_scan(cfg, [0])
    next_seq = first["publisher"]["next_seq"]
    pipe = build_bench_pipeline(cfg)
    try:
        assert pipe.publisher.epoch == first["publisher"]["epoch"]
        assert pipe.publisher.stats()["next_seq"]["cell"] == next_seq["cell"] >= 1
        pipe.start()
        cells: list[StainedCell] = []
        summaries: list[FieldSummary] = []
        with Subscriber(pipe.publisher.endpoint, control=pipe.control.endpoint, start={"cell": 0, "field": 0}) as sub, \
                ControlClient(pipe.control.endpoint, timeout=5.0) as ctl:
            assert pipe.publisher.wait_for_subscribers(4, 5.0)
            ctl.call("start_scan", slide_id="s1", fields=fields(range(1, 2)))
            read_until_fields(sub, {0, 1}, cells, summaries)
        assert [c.seq for c in cells] == list(range(len(cells))) and len(cells) > next_seq["cell"]
        assert len({c.cell_id for c in cells}) == len(cells) == sum(s.header["cells"] for s in summaries)
        assert {c.header["epoch"] for c in cells} == {first["publisher"]["epoch"]}
    finally:
        pipe.shutdown()


def test_a_full_spool_keeps_staining_and_counts_unspooled_cells(tiny_model: Path, tmp_path: Path) -> None:
    cfg = bench_config(tiny_model, spool=SpoolConfig(path=str(tmp_path / "spool.db"), max_mb=4096 / 2**20))
    msgs, sub, status = run_scan(cfg, [0, 1])  # a cell (two 32x32 RGB payloads + header) is over 4 kB
    cells = [m for m in msgs if isinstance(m, StainedCell)]
    announced = sum(m.header["cells"] for m in msgs if isinstance(m, FieldSummary))
    assert len(cells) == announced >= 1 and sub.gaps["cell"] == 0
    assert status["counters"]["cells_sent"] == len(cells)
    assert status["counters"]["cells_unspooled"] == len(cells) == status["spool"]["unspooled"]["cell"]
    assert "exceeds the spool bound" in status["spool"]["error"]
    assert status["spool"]["held"]["field"]["messages"] == 2  # small messages still fit


def test_an_unusable_spool_file_leaves_the_daemon_staining(tiny_model: Path, tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a directory")
    cfg = bench_config(tiny_model, spool=SpoolConfig(path=str(tmp_path / "file" / "spool.db")))
    msgs, _sub, status = run_scan(cfg, [0])
    cells = [m for m in msgs if isinstance(m, StainedCell)]
    assert cells and status["counters"]["cells_unspooled"] == len(cells)
    assert not status["spool"]["available"] and "WITHOUT a spool" in status["spool"]["open_error"]


def test_a_corrupt_spool_is_moved_aside_and_replay_works(tiny_model: Path, tmp_path: Path) -> None:
    (tmp_path / "spool.db").write_bytes(b"garbage" * 1000)
    cfg: EdgeConfig = bench_config(tiny_model, spool=SpoolConfig(path=str(tmp_path / "spool.db")))
    pipe = build_bench_pipeline(cfg).start()
    try:
        assert pipe.publisher.spool is not None and "moved to" in pipe.publisher.spool.open_error
        with ControlClient(pipe.control.endpoint, timeout=5.0) as ctl:
            ctl.call("scan_field", field_id=0)
            assert pipe.wait_idle(60.0)
            assert "moved to" in ctl.call("status")["spool"]["open_error"]
            result, _frames = ctl.call_framed("replay", topic="field", first=0)
            assert result["count"] == 1
    finally:
        pipe.shutdown()
    assert list(tmp_path.glob("spool.db.corrupt-*"))


def test_replay_without_a_spool_says_so(tiny_model: Path) -> None:
    pipe = build_bench_pipeline(bench_config(tiny_model, spool=SpoolConfig(path=""))).start()
    try:
        with ControlClient(pipe.control.endpoint, timeout=5.0) as ctl:
            with pytest.raises(ControlError, match=r"without a spool: \[spool\] path is empty") as err:
                ctl.call("replay", topic="cell", first=0)
            assert err.value.code == "no_spool"
            assert ctl.call("status")["spool"]["available"] is False
    finally:
        pipe.shutdown()
