"""``make_runner``: the runner of a loaded model, set up for the batches the daemon makes."""

from __future__ import annotations

import pytest

from core.config import ConfigError
from edge.device.backends.openvino import OpenVinoBackend
from edge.device.build import full_batch_streams, make_runner
from edge.device.config import BatchingConfig, EdgeConfig, ModelConfig
from edge.device.inference import ModelRunner
from edge.device.model import open_model
from firmware_bridge.rigs import get_profile
from tests.edge.bundle_support import GOLDEN_BUNDLE, GOLDEN_PUB


def runner_for(backend: str, fixed_batch: bool = True, streams: int = 0) -> ModelRunner:
    cfg = ModelConfig(bundle=str(GOLDEN_BUNDLE), public_key=str(GOLDEN_PUB), backend=backend, threads=1)
    batching = BatchingConfig(max_batch=4, fixed_batch=fixed_batch, fixed_batch_streams=streams)
    return make_runner(EdgeConfig(batching=batching, model=cfg), open_model(cfg, get_profile("thesis-43")))


@pytest.mark.parametrize("backend", ["openvino", "onnxruntime"])
def test_the_backend_is_fixed_at_the_full_batch_where_that_pays(backend: str) -> None:
    runner = runner_for(backend)
    try:
        if backend == "openvino":
            assert isinstance(runner.backend, OpenVinoBackend) and runner.backend.fixed_batch == (4, False)
            assert runner.plugin_properties["FIXED_BATCH"] == "4"
            assert runner.plugin_properties["FIXED_BATCH_STREAMS"] == str(full_batch_streams(BatchingConfig(4), 2))
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


def test_a_set_stream_count_reaches_the_backend() -> None:
    runner = runner_for("openvino", streams=4)
    try:
        assert runner.plugin_properties["FIXED_BATCH_STREAMS"] == "4"
    finally:
        runner.close()


def test_full_batches_run_on_two_streams_where_they_split_evenly_over_two_cores() -> None:
    assert full_batch_streams(BatchingConfig(max_batch=8), cores=2) == 2
    assert full_batch_streams(BatchingConfig(max_batch=8), cores=1) == 1
    assert full_batch_streams(BatchingConfig(max_batch=7), cores=4) == 1
    assert full_batch_streams(BatchingConfig(max_batch=8, fixed_batch_streams=4), cores=1) == 4  # as set


@pytest.mark.parametrize("streams", [-1, 3, 16])
def test_a_stream_count_that_does_not_divide_the_batch_is_refused(streams: int) -> None:
    with pytest.raises(ConfigError, match=r"batching.fixed_batch_streams: expected 0 \(auto\) or a divisor of "
                                          r"max_batch \(8\)"):
        BatchingConfig(max_batch=8, fixed_batch_streams=streams)
