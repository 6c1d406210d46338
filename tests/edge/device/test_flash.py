"""Flashing the running daemon on the virtual bench: real ZeroMQ, real ONNX Runtime, real install root."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from core.config import ConfigError
from edge.bench.daemon import build_bench_pipeline
from edge.client import ControlClient, Event, FieldSummary, StainedCell, Subscriber
from edge.device import slots
from edge.device.app import Pipeline
from edge.device.errors import ControlError
from edge.device.flash import FINAL, Health, judge
from edge.device.opsconfig import FlashConfig
from tests.edge.conftest import bench_config
from tests.edge.device.test_app_spool import Gate, fields, read_until_fields
from tests.edge.device.test_slots import tree
from tests.edge.flash_support import Bench, dark_nan_onnx, downgraded, installed_bench, tampered, unsigned


@pytest.fixture
def bench(tiny_model: Path, tmp_path: Path) -> Bench:
    return installed_bench(tmp_path, tiny_model)


def updater(pipe: Pipeline) -> Any:
    assert pipe.updater is not None
    return pipe.updater


def scan_with_flash(bench: Bench, flash: dict[str, Any], **cfg: Any) -> tuple[list[StainedCell], dict[str, Any],
                                                                               dict[str, Any]]:
    """Scan 10 fields; fields 0-1 pass before ``flash`` is sent, 2-9 are held until the new model is in its
    health window (or the flash ended). Returns the cells (each checked to arrive once), the update's final
    status and the daemon's status."""
    pipe = build_bench_pipeline(bench.config(**cfg))
    gate = Gate(pipe.source, hold_from=2)
    pipe.source = gate
    pipe.start()
    try:
        with Subscriber(pipe.publisher.endpoint, topics=("cell", "field")) as sub, \
                ControlClient(pipe.control.endpoint, timeout=10.0) as ctl:
            assert pipe.publisher.wait_for_subscribers(2, 5.0)
            ctl.call("start_scan", slide_id="s1", fields=fields(range(10)))
            cells: list[StainedCell] = []
            summaries: list[FieldSummary] = []
            read_until_fields(sub, {0, 1}, cells, summaries)
            assert ctl.call("flash", **flash)["state"] == "verifying"
            assert updater(pipe).wait(60.0, ("health window", *FINAL))["state"] == "health window"
            with pytest.raises(ControlError, match="a model update is running") as busy:  # no cell flows yet
                ctl.call("flash", path=str(bench.tmp / "any.stainless"))
            assert busy.value.code == "busy"
            gate.open.set()
            assert pipe.wait_idle(60.0)
            final = updater(pipe).wait(60.0)
            read_until_fields(sub, set(range(10)), cells, summaries)
            status = ctl.call("status")
        detected = [cid for s in summaries for cid in s.header["cell_ids"]]
        received = [c.cell_id for c in cells]
        assert len(received) == len(set(received)) == len(detected) and set(received) == set(detected)
        assert sub.gaps["cell"] == 0 and status["counters"].get("cells_lost_model", 0) == 0
        return cells, final, status
    finally:
        gate.open.set()
        pipe.shutdown()


def versions(cells: list[StainedCell], ids: range) -> set[str]:
    return {c.header["model"]["version"] for c in cells if c.header["field_id"] in ids}


def test_flash_while_scanning_switches_between_batches_and_commits(bench: Bench) -> None:
    cells, final, status = scan_with_flash(bench, {"path": str(bench.bundle("1.1.0"))}, health_cells=3)
    assert final["state"] == "committed", final
    assert final["health"]["cells"] >= 3 and final["bundle"]["version"] == "1.1.0"
    assert versions(cells, range(2)) == {"1.0.0"} and versions(cells, range(2, 10)) == {"1.1.0"}
    assert status["model"]["version"] == "1.1.0" and status["model_update"]["state"] == "committed"
    listing = slots.models(bench.root)
    assert listing["current"] == "tiny-1.1.0" and listing["previous"] == "tiny-1.0.0"
    assert listing["highest"] == {"tiny": "1.1.0"}


def test_a_model_failing_its_health_window_rolls_back_by_itself(bench: Bench, tmp_path: Path) -> None:
    bad = bench.bundle("1.2.0", dark_nan_onnx(tmp_path / "dark-nan.onnx"))
    before = tree(bench.root)
    cells, final, status = scan_with_flash(bench, {"bundle": bad.read_bytes()}, health_cells=3)
    assert final["state"].startswith("rolled back: output check: ") and "non-finite" in final["state"], final
    assert versions(cells, range(10)) == {"1.0.0"}  # the failing batch was stained again by the old model
    assert status["model"]["version"] == "1.0.0"
    assert tree(bench.root) == before


@pytest.mark.parametrize(("make", "code"), [(tampered, "hash_mismatch"), (unsigned, "unsigned"),
                                            (downgraded, "downgrade")])
def test_a_bad_bundle_is_refused_with_its_code_and_nothing_changes(bench: Bench, make: Any, code: str) -> None:
    bad = make(bench)
    before = tree(bench.root)
    pipe = build_bench_pipeline(bench.config()).start()
    try:
        with ControlClient(pipe.control.endpoint, timeout=10.0) as ctl:
            ctl.call("flash", path=str(bad))
            final = updater(pipe).wait(60.0)
            assert final["state"] == f"refused: {code}" and final["error"]["code"] == code, final
            status = ctl.call("status")
            assert status["model"]["version"] == "1.0.0" and status["model_update"]["state"] == final["state"]
            ctl.call("scan_field", slide_id="s1", field_id=0)  # and it keeps staining
            assert pipe.wait_idle(60.0) and ctl.call("status")["counters"]["cells_sent"] >= 1
    finally:
        pipe.shutdown()
    assert tree(bench.root) == before


def test_rollback_and_models_commands(bench: Bench) -> None:
    pipe = build_bench_pipeline(bench.config(health_cells=0)).start()
    try:
        with ControlClient(pipe.control.endpoint, timeout=10.0) as ctl, \
                Subscriber(pipe.publisher.endpoint, topics=("event",)) as sub:
            assert pipe.publisher.wait_for_subscribers(1, 5.0)
            ctl.call("flash", path=str(bench.bundle("1.1.0")))
            assert updater(pipe).wait(60.0)["state"] == "committed"
            states = []
            while not states or states[-1] != "committed":
                m = sub.receive(timeout=10.0)
                assert isinstance(m, Event), "the model_update events stopped before 'committed'"
                if m.header["event"] == "model_update":
                    states.append(m.header["message"])
            assert states == ["verifying", "building engine", "self-test", "warming up", "health window", "committed"]
            with pytest.raises(ControlError, match="it takes none"):
                ctl.call("rollback", force=True)
            listing = ctl.call("models")
            assert listing["current"] == "tiny-1.1.0" and listing["running"]["version"] == "1.1.0"
            assert {s["slot"]: len(s["self_test"]) for s in listing["slots"]} == {"tiny-1.0.0": 1, "tiny-1.1.0": 2}
            ctl.call("rollback")
            final = updater(pipe).wait(60.0)
            assert final["state"] == "rolled back: requested, now tiny-1.0.0", final
            assert ctl.call("status")["model"]["version"] == "1.0.0"
            listing = ctl.call("models")
            assert (listing["current"], listing["previous"]) == ("tiny-1.0.0", "tiny-1.1.0")
            with pytest.raises(ControlError, match="exactly one of 'path'") as err:
                ctl.call("flash")
            assert err.value.code == "bad_args"
    finally:
        pipe.shutdown()


def test_flash_without_an_install_root_says_how_to_set_one(tiny_model: Path) -> None:
    pipe = build_bench_pipeline(bench_config(tiny_model)).start()
    try:
        with ControlClient(pipe.control.endpoint, timeout=10.0) as ctl, \
                pytest.raises(ControlError, match=r"\[flash\] root") as err:
            ctl.call("flash", path="/nowhere.stainless")
        assert err.value.code == "no_install_root"
    finally:
        pipe.shutdown()


def test_judge_names_the_bound_that_failed() -> None:
    cfg = FlashConfig(max_suspect_fraction=0.5, max_slowdown=2.0)
    assert judge(Health(cells=10, suspect=5, batch_ms_per_cell=[1.0]), 1.0, cfg, True) is None
    assert "6 of 10 cells suspect" in str(judge(Health(cells=10, suspect=6), 1.0, cfg, True))
    assert judge(Health(cells=10, suspect=6), 1.0, cfg, False) is None
    slow = Health(cells=12, batch_ms_per_cell=[2.5, 2.5, 0.5])
    assert "2.5 ms per cell" in str(judge(slow, 1.0, cfg, True))  # the median batch
    assert judge(Health(cells=12, batch_ms_per_cell=[0.5, 0.5, 9.0]), 1.0, cfg, True) is None  # one slow batch
    assert judge(slow, 0.0, cfg, True) is None  # no baseline: no throughput bound
    assert judge(Health(failure="output check: NaN"), 1.0, cfg, True) == "output check: NaN"



def test_an_unreadable_trusted_key_stops_the_daemon_at_start(bench: Bench) -> None:
    cfg = bench.config(trusted_keys=(str(bench.tmp / "missing.pub"),))
    with pytest.raises(ConfigError, match=r"flash.trusted_keys .*missing.pub"):
        build_bench_pipeline(cfg)


def test_a_rollback_to_a_damaged_previous_slot_is_refused_and_changes_nothing(bench: Bench) -> None:
    slots.install(bench.bundle("1.1.0"), bench.root, slots.TrustPolicy((bench.key.public_key(),)))
    (bench.root / "versions/tiny-1.0.0/model.fp32.onnx").write_bytes(b"not a model")
    before = tree(bench.root)
    pipe = build_bench_pipeline(bench.config()).start()
    try:
        with ControlClient(pipe.control.endpoint, timeout=10.0) as ctl:
            ctl.call("rollback")
            final = updater(pipe).wait(60.0)
            assert final["state"] == "refused: hash_mismatch", final
            assert ctl.call("status")["model"]["version"] == "1.1.0"
    finally:
        pipe.shutdown()
    assert tree(bench.root) == before
