"""Helpers for the flash tests: signed bundles of the bench's tiny model by version, bad bundles, an
install root, and a model that fails only on the bench's cells."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge.device import slots
from edge.device.bundle import read_members
from edge.device.config import EdgeConfig, ModelConfig
from edge.device.manifest import SIGNATURE_NAME
from edge.device.opsconfig import ControlConfig, FlashConfig
from tests.edge.bundle_support import bench_bundle, manifest_doc, resign, write_tar
from tests.edge.conftest import CHANNELS, PATCH, bench_config


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
                           flash=FlashConfig(**{"warmup_batches": 1, "health_timeout_s": 120.0,
                                                 # timing on 2 shared cores is not what these tests judge
                                                 "max_slowdown": 1000.0, **flash}))


def tampered(bench: Bench) -> Path:
    members = read_members(bench.bundle("2.0.0"))
    members["model.fp32.onnx"] = members["model.fp32.onnx"] + b"\0"
    return write_tar(bench.tmp / "tampered.stainless", members)


def unsigned(bench: Bench) -> Path:
    members = read_members(bench.bundle("2.0.0"))
    del members[SIGNATURE_NAME]
    return write_tar(bench.tmp / "unsigned.stainless", members)


def downgraded(bench: Bench) -> Path:
    slots.install(bench.bundle("1.1.0"), bench.root, slots.TrustPolicy((bench.key.public_key(),)))
    slots.rollback(bench.root)  # the daemon runs 1.0.0; 1.1.0 was committed once
    return bench.bundle("0.9.0")




def installed_bench(tmp_path: Path, model: Path) -> Bench:
    """A :class:`Bench` whose install root holds ``tiny-1.0.0`` (current)."""
    b = Bench(tmp_path, model)
    slots.install(b.bundle("1.0.0"), b.root, slots.TrustPolicy((b.key.public_key(),)))
    return b
