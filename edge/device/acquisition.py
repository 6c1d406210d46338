"""Acquisition: light each LED of the recipe, expose with its calibrated settings, assemble the stack.

Two modes (``AcquisitionConfig.mode``):

* ``host`` — host-paced: for every plane the host sends one ``l.`` command (the two exposures of a
  darkfield LED share it), waits for the controller's reply, then grabs a frame;
* ``sequence`` — firmware-sequenced: the recipe's patterns are uploaded once, the camera is armed
  for one frame per trigger pulse and ``rseq`` runs them with trigger output 0 pulsing per pattern.

A failure of the LED array or the camera mid-stack discards the partial stack; the field is
retried ``retries`` times and then reported as an :class:`AcquisitionError` — never half-published.
"""

from __future__ import annotations

import contextlib
import logging
import time
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from core.config import ConfigError
from edge.device.calibration import Calibration
from edge.device.cameras import Camera
from edge.device.config import AcquisitionConfig
from edge.device.errors import AcquisitionError, CameraError
from edge.device.stack import FieldRequest, PlaneInfo, Stack, plane_layout
from firmware_bridge.client import LedArray
from firmware_bridge.errors import BridgeError
from firmware_bridge.recipes import StackRecipe

log = logging.getLogger(__name__)


def apply_flat_field(frame: NDArray[np.uint16], gain: NDArray[np.float32], black: float,
                     max_adu: int) -> NDArray[np.uint16]:
    """``(frame − black) · gain + black``, rounded and clipped to the ADC range (stays uint16)."""
    out = (frame.astype(np.float32) - np.float32(black)) * gain + np.float32(black)
    return np.clip(np.rint(out), 0, max_adu).astype(np.uint16)


class StackSource(Protocol):
    """Where the daemon's stacks come from: :class:`Acquirer` on a device, a replay of cached stacks in a benchmark."""

    def capture(self, request: FieldRequest) -> Stack:
        """The stack of ``request``; raise :class:`AcquisitionError` when it cannot be captured."""
        ...


class Acquirer:
    """Captures stacks of ``recipe`` with one LED array and one camera (one thread at a time)."""

    def __init__(self, led: LedArray, camera: Camera, recipe: StackRecipe, config: AcquisitionConfig,
                 timeout_s: float = 2.0, calibration: Calibration | None = None) -> None:
        self.led = led
        self.camera = camera
        self.recipe = recipe
        self.config = config
        self.timeout_s = timeout_s
        #: The calibration file in use (``stainless-edge calibrate``), recorded in every stack.
        self.calibration = calibration
        table = calibration.exposures() if calibration is not None else camera.calibration(recipe.id)
        if table is None:
            raise ConfigError("this camera has no exposure table of its own: run `stainless-edge calibrate --config "
                              "C --out PATH` and set [calibration] path = PATH")
        try:
            self.planes: tuple[PlaneInfo, ...] = plane_layout(recipe, table)
        except KeyError as exc:
            raise ConfigError(str(exc.args[0])) from exc
        self.flat = calibration.flat_field if calibration is not None else {}
        self._sequence_loaded = False
        self._illumination_ready = False

    def _prepare_illumination(self) -> None:
        """Full drive on every colour channel: the calibration table assumes it."""
        colours = len(self.led.geometry().wavelengths_nm)
        if colours > 1:
            self.led.set_color(255)
        self.led.set_brightness(255)
        self._illumination_ready = True

    def capture(self, request: FieldRequest) -> Stack:
        """One complete stack of ``request``'s field, retried on LED/camera failures."""
        last: Exception | None = None
        for attempt in range(1, self.config.retries + 2):
            try:
                return self._capture_once(request, attempt)
            except (BridgeError, CameraError) as exc:
                last = exc
                self._sequence_loaded = False
                self._illumination_ready = False
                log.warning("field %s/%d: capture attempt %d failed: %s", request.slide_id, request.field_id,
                            attempt, exc)
        raise AcquisitionError(f"field {request.field_id} of {request.slide_id}: no complete stack after "
                               f"{self.config.retries + 1} attempts; last error: {last}") from last

    def _capture_once(self, request: FieldRequest, attempt: int) -> Stack:
        if not self._illumination_ready:
            self._prepare_illumination()
        self.camera.move_to(request)
        t0 = time.time()
        frames = self._host_paced() if self.config.mode == "host" else self._sequenced()
        t1 = time.time()
        self.led.clear()
        if self.flat:
            frames = [self._flatten(f, p) for f, p in zip(frames, self.planes, strict=True)]
        pixels = np.stack(frames)
        return Stack(request, pixels, self.planes, tuple(self.camera.colours), self.camera.pixel_um,
                     self.camera.black_level, self.camera.max_adu, t0, t1, attempt,
                     calibration_id=self.calibration.id if self.calibration is not None else "")

    def _flatten(self, frame: NDArray[np.uint16], plane: PlaneInfo) -> NDArray[np.uint16]:
        gain = self.flat.get(plane.name)
        if gain is None:
            return frame
        if gain.shape != frame.shape:
            raise ConfigError(f"flat field of {plane.name}: expected a gain map of the frame's shape {frame.shape}, "
                              f"found {gain.shape}; calibrate again with this camera (stainless-edge calibrate)")
        return apply_flat_field(frame, gain, self.camera.black_level, self.camera.max_adu)

    def _host_paced(self) -> list[NDArray[np.uint16]]:
        frames = []
        lit: tuple[int, ...] | None = None
        for plane in self.planes:
            if plane.leds != lit:  # low/high exposures of one darkfield LED share the command
                self.led.light(plane.leds)
                lit = plane.leds
            frames.append(self.camera.grab(plane, self.timeout_s))
        return frames

    def _sequenced(self) -> list[NDArray[np.uint16]]:
        if not self._sequence_loaded:
            self.led.load_sequence([p.leds for p in self.planes])
            self._sequence_loaded = True
        self.camera.arm(self.planes)
        try:
            self.led.run_sequence(self.config.sequence_delay_ms, trigger_output=(1,))
        except BridgeError:
            with contextlib.suppress(CameraError):
                self.camera.collect(0.0)  # disarms the camera; the frames are incomplete anyway
            raise
        return self.camera.collect(self.timeout_s)
