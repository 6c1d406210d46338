"""Flashing the running daemon on the virtual bench: real ZeroMQ, real ONNX Runtime, real install root."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge.bench.daemon import build_bench_pipeline
from edge.client import ControlClient, FieldSummary, StainedCell, Subscriber
from edge.device import slots
from edge.device.app import Pipeline
from edge.device.bundle import read_members
from edge.device.config import ControlConfig, EdgeConfig, FlashConfig, ModelConfig
from edge.device.errors import ControlError
from edge.device.flash import FINAL, Health, judge
from edge.device.manifest import SIGNATURE_NAME
from tests.edge.bundle_support import bench_bundle, manifest_doc, resign, write_tar
from tests.edge.conftest import CHANNELS, PATCH, bench_config
from tests.edge.device.test_app_spool import Gate, fields, read_until_fields
from tests.edge.device.test_slots import tree


def dark_nan_onnx(path: Path) -> Path:
    """The conftest's tiny model, but NaN for inputs whose mean is below 0.3: the golden inputs (uniform on
    [0, 1), mean 0.5) pass the self-test and the warm-up; the bench's cells (mean about 0.1) do not."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = (np.random.default_rng(0).standard_normal((3, CHANNELS, 1, 1)) * 0.05).astype(np.float32)
    consts = {"w": w, "b": np.zeros(3, np.float32), "t": np.float32(0.3), "zero": np.float32(0.0),
              "one": np.float32(1.0)}
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["z"]), helper.make_node("Sigmoid", ["z"], ["s"]),
             helper.make_node("ReduceMean", ["x"], ["m"], axes=[1, 2, 3], keepdims=1),
             helper.make_node("Sub", ["m", "t"], ["d"]), helper.make_node("Sqrt", ["d"], ["q"]),
             helper.make_node("Mul", ["q", "zero"], ["n"]), helper.make_node("Add", ["n", "one"], ["k"]),
             helper.make_node("Mul", ["s", "k"], ["y"])]
    graph = helper.make_graph(
        nodes, "dark-nan", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", CHANNELS, PATCH, PATCH])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3, PATCH, PATCH])],
        [numpy_helper.from_array(np.asarray(v), k) for k, v in consts.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(path))
    return path


class Bench:
    """A signing key, its .pub file, bundles of the bench's tiny model by version, an install root."""

    def __init__(self, tmp_path: Path, model: Path) -> None:
        self.tmp, self.model, self.key = tmp_path, model, Ed25519PrivateKey.generate()
        self.pub = tmp_path / "signer.pub"
        self.pub.write_bytes(self.key.public_key().public_bytes(serialization.Encoding.PEM,
                                                                serialization.PublicFormat.SubjectPublicKeyInfo))
        self.root = tmp_path / "models"
        self._base = bench_bundle(tmp_path / "base.stainless", model, self.key, {})

    def bundle(self, version: str, model: Path | None = None) -> Path:
        base = self._base if model is None else bench_bundle(self.tmp / f"base-{model.stem}.stainless", model,
                                                             self.key, {})
        members = read_members(base)
        return resign(self.tmp / f"tiny-{version}.stainless", members, {**manifest_doc(members), "version": version},
                      self.key)

    def config(self, **flash: Any) -> EdgeConfig:
        cfg = bench_config(self.model)
        return cfg.replace(model=ModelConfig(bundle=str(self.root), public_key=str(self.pub), threads=1),
                           control=ControlConfig(endpoint="tcp://127.0.0.1:*", max_message_bytes=8 << 20),
                           flash=FlashConfig(**{"warmup_batches": 1, "health_timeout_s": 120.0, **flash}))


@pytest.fixture
def bench(tiny_model: Path, tmp_path: Path) -> Bench:
    b = Bench(tmp_path, tiny_model)
    slots.install(b.bundle("1.0.0"), b.root, slots.TrustPolicy((b.key.public_key(),)))
    return b


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
            updater(pipe).wait(60.0, ("health window", *FINAL))
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


def _tampered(bench: Bench) -> Path:
    members = read_members(bench.bundle("2.0.0"))
    members["model.fp32.onnx"] = members["model.fp32.onnx"] + b"\0"
    return write_tar(bench.tmp / "tampered.stainless", members)


def _unsigned(bench: Bench) -> Path:
    members = read_members(bench.bundle("2.0.0"))
    del members[SIGNATURE_NAME]
    return write_tar(bench.tmp / "unsigned.stainless", members)


def _downgraded(bench: Bench) -> Path:
    slots.install(bench.bundle("1.1.0"), bench.root, slots.TrustPolicy((bench.key.public_key(),)))
    slots.rollback(bench.root)  # the daemon runs 1.0.0; 1.1.0 was committed once
    return bench.bundle("0.9.0")


@pytest.mark.parametrize(("make", "code"), [(_tampered, "hash_mismatch"), (_unsigned, "unsigned"),
                                            (_downgraded, "downgrade")])
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
        with ControlClient(pipe.control.endpoint, timeout=10.0) as ctl:
            ctl.call("flash", path=str(bench.bundle("1.1.0")))
            assert updater(pipe).wait(60.0)["state"] == "committed"
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
    assert judge(Health(cells=10, suspect=5, infer_ms=10.0), 1.0, cfg, True) is None
    assert "6 of 10 cells suspect" in str(judge(Health(cells=10, suspect=6, infer_ms=10.0), 1.0, cfg, True))
    assert judge(Health(cells=10, suspect=6, infer_ms=10.0), 1.0, cfg, False) is None
    assert "2.5 ms per cell" in str(judge(Health(cells=4, infer_ms=10.0), 1.0, cfg, True))
    assert judge(Health(cells=4, infer_ms=10.0), 0.0, cfg, True) is None  # no baseline: no throughput bound
    assert judge(Health(failure="output check: NaN"), 1.0, cfg, True) == "output check: NaN"

