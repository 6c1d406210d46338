from __future__ import annotations

from pathlib import Path

import pytest

from core.config import ConfigError
from edge.bench.daemon import build_bench_pipeline
from edge.device.cameras import open_camera
from edge.device.config import CameraConfig, VirtualBenchConfig
from edge.device.errors import CameraError
from tests.edge.conftest import bench_config


def test_the_device_runtime_does_not_open_the_virtual_bench_camera() -> None:
    with pytest.raises(CameraError, match="build_bench_pipeline"):
        open_camera("sim://", CameraConfig())


def test_truth_needs_the_virtual_bench_camera(tiny_model: Path, tmp_path: Path) -> None:
    cfg = bench_config(tiny_model, camera=CameraConfig(url=f"replay://{tmp_path}"),
                       virtual_bench=VirtualBenchConfig(send_truth=True))
    with pytest.raises(ConfigError, match="send_truth needs the virtual bench camera"):
        build_bench_pipeline(cfg)
