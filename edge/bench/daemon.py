"""The daemon on the virtual bench: :func:`edge.device.build.build_pipeline` with the simulator's parts.

For a ``sim://`` camera URL the emulated LED array (``led.url = "sim://..."``) lights a simulated
smear that :class:`~edge.bench.camera.SimCamera` renders; with ``[virtual_bench] send_truth`` each
field also carries the simulator's registered stained truth (:class:`~edge.bench.simbench.StainedTruth`).
Any other camera URL is a device camera, opened by the device runtime as on a device.
"""

from __future__ import annotations

from typing import Any

import zmq

from core.config import ConfigError
from edge.bench.camera import SimCamera
from edge.bench.simbench import StainedTruth
from edge.device.acquisition import StackSource
from edge.device.app import Pipeline
from edge.device.build import build_pipeline
from edge.device.cameras import Camera, open_camera
from edge.device.config import EdgeConfig
from edge.device.errors import CameraError
from edge.device.model import LoadedModel
from firmware_bridge.client import LedArray, open_led_array
from firmware_bridge.link import LinkConfig


def is_bench_camera(config: EdgeConfig) -> bool:
    return config.camera.url.partition("://")[0] == "sim"


def open_bench_camera(config: EdgeConfig, led: LedArray) -> Camera:
    """The camera of ``config``: the simulated one for ``sim://``, else the device camera of that URL."""
    if not is_bench_camera(config):
        if config.virtual_bench.send_truth:
            raise ConfigError(f"[virtual_bench] send_truth needs the virtual bench camera (camera.url = 'sim://'), "
                              f"not {config.camera.url}")
        return open_camera(config.camera.url, config.camera)
    if led.emulator is None:
        raise CameraError("the sim:// camera renders what the emulated LED array lights; open the LED "
                          "array with a sim:// URL too (e.g. led.url = 'sim://thesis-43')")
    return SimCamera(led.emulator, config.virtual_bench, black_level=config.camera.black_level_adu)


def build_bench_pipeline(config: EdgeConfig, *, led: LedArray | None = None, model: LoadedModel | None = None,
                         context: zmq.Context[Any] | None = None,
                         stack_source: StackSource | None = None) -> Pipeline:
    """:func:`~edge.device.build.build_pipeline` with the virtual bench's camera (and truth); same ownership rules."""
    owned: list[Any] = []
    try:
        if led is None:
            led = open_led_array(config.led.url, config=LinkConfig(timeout_s=config.led.timeout_s))
            owned.append(led)
        camera = open_bench_camera(config, led)
        owned.append(camera)
        truth = (StainedTruth(camera.sim.config)
                 if config.virtual_bench.send_truth and isinstance(camera, SimCamera) else None)
    except BaseException:
        for thing in reversed(owned):
            thing.close()
        raise
    # from here on build_pipeline owns them: it closes them if it fails, else the pipeline at shutdown
    return build_pipeline(config, led=led, camera=camera, model=model, context=context,
                          stack_source=stack_source, truth=truth, own=owned)
