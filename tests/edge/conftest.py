"""Fixtures of the edge tests: a tiny real ONNX model, small virtual-bench configs."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from edge.device.config import (
    AcquisitionConfig,
    BatchingConfig,
    DaemonConfig,
    EdgeConfig,
    LedConfig,
    ModelConfig,
    VirtualBenchConfig,
)
from edge.device.opsconfig import ControlConfig, PublisherConfig


def tiny_onnx(path: Path, in_channels: int, patch: int, *, nan: bool = False) -> Path:
    """A 1x1 convolution from ``in_channels`` to RGB + sigmoid (opset 17), optionally emitting NaN."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    w = (rng.standard_normal((3, in_channels, 1, 1)) * 0.05).astype(np.float32)
    b = np.zeros(3, np.float32)
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["z"]), helper.make_node("Sigmoid", ["z"], ["s"])]
    inits = [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")]
    if nan:
        inits.append(numpy_helper.from_array(np.array([np.nan], np.float32), "nan"))
        nodes.append(helper.make_node("Mul", ["s", "nan"], ["y"]))
    else:
        nodes.append(helper.make_node("Identity", ["s"], ["y"]))
    graph = helper.make_graph(
        nodes, "tiny", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", in_channels, patch, patch])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3, patch, patch])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(path))
    return path


#: full-nohe on thesis-43: 44 images x 3 colours
CHANNELS = 132
PATCH = 32


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_onnx(tmp_path_factory.mktemp("model") / "tiny.onnx", CHANNELS, PATCH)


@pytest.fixture(scope="session")
def nan_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_onnx(tmp_path_factory.mktemp("model") / "nan.onnx", CHANNELS, PATCH, nan=True)


def bench_config(model: Path, **sections: object) -> EdgeConfig:
    """A small virtual-bench config on random loopback ports."""
    cfg = EdgeConfig(
        daemon=DaemonConfig(id="test-daemon", status_interval_s=0.2),
        led=LedConfig(url="sim://thesis-43"),
        virtual_bench=VirtualBenchConfig(field_size_px=(128, 128), seed=3, wbc_per_mm2=1500.0),
        acquisition=AcquisitionConfig(mode="host"),
        batching=BatchingConfig(max_batch=4, max_queue_delay_ms=5.0, queue_size=16),
        model=ModelConfig(onnx=str(model), patch_size=PATCH, threads=1),
        publisher=PublisherConfig(endpoint="tcp://127.0.0.1:*", linger_ms=0),
        control=ControlConfig(endpoint="tcp://127.0.0.1:*"),
    )
    return cfg.replace(**sections) if sections else cfg


def bench_toml(path: Path, model: Path, daemon_id: str) -> Path:
    """A small virtual-bench daemon config file (96 px fields, random loopback ports) at ``path``."""
    path.write_text(f"""
[daemon]
id = "{daemon_id}"
log_level = "WARNING"
[virtual_bench]
field_size_px = [96, 96]
[model]
onnx = "{model}"
patch_size = 32
[publisher]
endpoint = "tcp://127.0.0.1:*"
linger_ms = 0
[control]
endpoint = "tcp://127.0.0.1:*"
""")
    return path


@pytest.fixture
def tiny_config(tiny_model: Path) -> Iterator[EdgeConfig]:
    yield bench_config(tiny_model)


@pytest.fixture
def keep_signal_handlers() -> Iterator[None]:
    """Restores SIGINT/SIGTERM handlers a daemon run in this process installed."""
    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    yield
    for s, h in saved.items():
        signal.signal(s, h)
