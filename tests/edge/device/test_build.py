"""``make_runner``: the runner of a loaded model, set up for the batches the daemon makes."""

from __future__ import annotations

import pytest

from edge.device.backends.openvino import OpenVinoBackend
from edge.device.build import make_runner
from edge.device.config import BatchingConfig, EdgeConfig, ModelConfig
from edge.device.inference import ModelRunner
from edge.device.model import open_model
from firmware_bridge.rigs import get_profile
from tests.edge.bundle_support import GOLDEN_BUNDLE, GOLDEN_PUB


def runner_for(backend: str, fixed_batch: bool = True) -> ModelRunner:
    cfg = ModelConfig(bundle=str(GOLDEN_BUNDLE), public_key=str(GOLDEN_PUB), backend=backend, threads=1)
    return make_runner(EdgeConfig(batching=BatchingConfig(max_batch=4, fixed_batch=fixed_batch), model=cfg),
                       open_model(cfg, get_profile("thesis-43")))


@pytest.mark.parametrize("backend", ["openvino", "onnxruntime"])
def test_the_backend_is_fixed_at_the_full_batch_where_that_pays(backend: str) -> None:
    runner = runner_for(backend)
    try:
        if backend == "openvino":
            assert isinstance(runner.backend, OpenVinoBackend) and runner.backend.fixed_batch == (4, False)
            assert runner.plugin_properties["FIXED_BATCH"] == "4"
        else:
            assert runner.plugin_properties == {}
        assert runner.profile_sizes == ()  # batches are not padded for it: other sizes run the any-batch model
    finally:
        runner.close()


def test_fixed_batch_off_leaves_the_any_batch_model_alone() -> None:
    runner = runner_for("openvino", fixed_batch=False)
    try:
        assert isinstance(runner.backend, OpenVinoBackend) and runner.backend.fixed_batch is None
        assert "FIXED_BATCH" not in runner.plugin_properties
    finally:
        runner.close()
