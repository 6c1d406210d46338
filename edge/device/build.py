"""The daemon composed in one place: :func:`build_pipeline` opens (or takes) every component —
LED array, camera, model, sockets, spool, security — and wires them into a
:class:`~edge.device.app.Pipeline` (the dataflow is drawn in :mod:`edge.device.app`)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import zmq

from edge.device.acquisition import Acquirer, StackSource
from edge.device.app import FieldAnnotator, Pipeline
from edge.device.backends import FixesBatch
from edge.device.batching import DynamicBatcher
from edge.device.calibration import load_calibration
from edge.device.cameras import Camera, open_camera
from edge.device.cell_jobs import CellJob, check_darkfield_channel
from edge.device.config import BatchingConfig, EdgeConfig
from edge.device.control import ControlServer
from edge.device.crops import Normalisation
from edge.device.errors import BackendError
from edge.device.fieldstain import open_field_stainer
from edge.device.flash import ModelUpdater
from edge.device.handlers import make_handlers
from edge.device.inference import ModelRunner
from edge.device.memory import tune_malloc
from edge.device.model import LoadedModel, open_model
from edge.device.priority import opencv_in_calling_thread, usable_cores
from edge.device.publisher import Publisher
from edge.device.replay import replay
from edge.device.security import open_security
from edge.device.spool import Spool
from firmware_bridge.client import LedArray, open_led_array
from firmware_bridge.link import LinkConfig

log = logging.getLogger(__name__)


def build_pipeline(config: EdgeConfig, *, led: LedArray | None = None, camera: Camera | None = None,
                   model: LoadedModel | None = None, context: zmq.Context[Any] | None = None,
                   stack_source: StackSource | None = None, truth: FieldAnnotator | None = None,
                   own: Sequence[Any] = ()) -> Pipeline:
    """Open (or take) every component and wire them; nothing runs until :meth:`Pipeline.start`.

    ``stack_source`` replaces the :class:`Acquirer` (LED array + camera) as the source of stacks (a
    benchmark replaying cached stacks); ``truth`` annotates each processed field (the virtual bench's
    stained ground truth, :mod:`edge.bench.daemon`). Whatever is passed in stays owned by the caller,
    except ``own``: those, and whatever is opened here, are closed by :meth:`Pipeline.shutdown` (or
    here, if building fails).
    """
    owned: list[Any] = list(own)
    tune_malloc()  # per-field arrays reuse heap memory instead of faulting in fresh pages
    opencv_in_calling_thread()  # no OpenCV pool spinning on the model's cores
    try:
        if led is None:
            led = open_led_array(config.led.url, config=LinkConfig(timeout_s=config.led.timeout_s))
            owned.append(led)
        geometry = led.geometry()
        if model is None:
            model = open_model(config.model, geometry)
            owned.append(model)
        check_darkfield_channel(model.spec.recipe, config.crops.send_darkfield)
        if camera is None:
            camera = open_camera(config.camera.url, config.camera)
            owned.append(camera)
        calibration = load_calibration(config.calibration.path, model.spec.recipe) if config.calibration.path else None
        source = stack_source or Acquirer(led, camera, model.spec.recipe, config.acquisition,
                                          config.camera.timeout_s, calibration)
        norm = Normalisation.uniform(len(model.spec.recipe), camera.black_level,
                                     camera.max_adu - camera.black_level)
        runner = make_runner(config, model, norm)
        ctx = context if context is not None else zmq.Context()
        if context is None:
            owned.append(_ContextCloser(ctx))
        security = open_security(ctx, config.security)  # the ZAP handler runs before any socket binds
        if security is not None:
            owned.append(security)
        spool = Spool(config.spool, owner=config.daemon.id) if config.spool.path else None
        if spool is not None:
            owned.append(spool)
        publisher = Publisher(ctx, config.publisher, config.daemon.id, spool=spool, security=security)
        owned.append(publisher)
        p = model.spec.patch_size
        # a backend that normalises camera counts itself gets them as they are: uint16 batch buffers
        batcher: DynamicBatcher[CellJob] = DynamicBatcher(config.batching, (model.spec.in_channels, p, p),
                                                          np.uint16 if runner.takes_raw else np.float32)
        pipeline = Pipeline(config, led, camera, source, runner, model.spec, norm, publisher, batcher, owned, truth)
        pipeline.security = security
        pipeline.updater = ModelUpdater(pipeline, lambda m: make_runner(config, m, norm, pipeline._on_degraded),
                                        pipeline._event)
        handlers = {**make_handlers(pipeline), "replay": lambda args: replay(spool, config.spool, args),
                    **pipeline.updater.handlers()}
        pipeline.control = ControlServer(ctx, config.control.endpoint, handlers, config.control.max_message_bytes,
                                         security)
        if config.field_stain.enabled:
            pipeline.field_stainer = open_field_stainer(config.field_stain, config.model, model.spec.in_channels, norm)
            owned.append(pipeline.field_stainer)
        return pipeline
    except BaseException:
        for thing in reversed(owned):
            thing.close()
        raise


def full_batch_streams(batching: BatchingConfig, cores: int) -> int:
    """How many equal parts a full batch runs as at once (``[batching] fixed_batch_streams``; 0: two where
    ``max_batch`` is even and there are two ``cores`` or more, else one) (pure)."""
    if batching.fixed_batch_streams:
        return batching.fixed_batch_streams
    return 2 if batching.max_batch % 2 == 0 and cores >= 2 else 1


def make_runner(config: EdgeConfig, model: LoadedModel, norm: Normalisation | None = None,
                on_degraded: Callable[[str], None] | None = None) -> ModelRunner:
    """The :class:`ModelRunner` of ``model``: batch profile, output range, fallback and styles from ``config``;
    ``norm`` (the camera's) offered to the backend as ``[model] raw_input`` says."""
    sizes = config.batching.profile_sizes or model.batch_sizes  # ONNX Runtime takes any batch: no padding
    runner = ModelRunner(model.backend, model.fallback, (config.model.output_min, config.model.output_max),
                         (*tuple(s for s in sizes if s <= config.batching.max_batch), config.batching.max_batch)
                         if sizes else (), on_degraded=on_degraded, styles=model.styles, norm=norm,
                         raw_input=config.model.raw_input)
    runner.backend_reason = model.backend_reason
    # a backend that takes any batch but runs one size faster
    if config.batching.fixed_batch and not sizes and isinstance(model.backend, FixesBatch):
        try:
            model.backend.fix_batch(config.batching.max_batch,
                                    full_batch_streams(config.batching, usable_cores()))
        except BackendError as exc:
            log.warning("full batches run the any-batch model: %s", exc)
    return runner


class _ContextCloser:
    def __init__(self, ctx: zmq.Context[Any]) -> None:
        self.ctx = ctx

    def close(self) -> None:
        self.ctx.term()
