"""Cameras behind one small protocol, chosen by URL.

* ``sim://`` — the virtual bench (:mod:`edge.bench.camera`, opened by :mod:`edge.bench.daemon`):
  renders what the emulated LED array currently lights, for the simulated field at the current
  stage position;
* ``replay://DIR`` — replays a raw scan written by ``stainless-sim scan`` or recorded on a device
  (:mod:`edge.device.cameras.replay`), plane by plane;
* ``opencv://<index|path>`` — a UVC/V4L2 camera or a video file through ``cv2.VideoCapture``
  (:mod:`edge.device.cameras.opencv`).

Two capture modes share the protocol: **host-paced** — the host lights an LED, then calls
:meth:`Camera.grab` — and **triggered** — :meth:`Camera.arm` with the planes to expect, the LED
controller runs its sequence and pulses the camera's trigger input once per pattern, then
:meth:`Camera.collect` returns the frames.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

from core.camera import Exposure
from edge.device.errors import CameraError
from edge.device.stack import FieldRequest, PlaneInfo

if TYPE_CHECKING:
    from edge.device.config import CameraConfig


@runtime_checkable
class Camera(Protocol):
    """What acquisition needs from a camera. Frames are ``(C, H, W)`` uint16 raw ADU."""

    url: str
    colours: tuple[str, ...]
    pixel_um: float
    max_adu: int
    black_level: float

    def calibration(self, recipe_id: str) -> dict[str, Exposure] | None:
        """The camera's own per-channel settings table for a recipe (sim/replay), else ``None``."""
        ...

    def move_to(self, request: FieldRequest) -> None:
        """The stage is at ``request`` now (the virtual bench and replay pick the field from it)."""
        ...

    def grab(self, plane: PlaneInfo, timeout_s: float) -> NDArray[np.uint16]:
        """Expose one frame now with ``plane.exposure``; raise :class:`CameraTimeout` when none comes."""
        ...

    def arm(self, planes: Sequence[PlaneInfo]) -> None:
        """Expect one trigger pulse per plane, exposing each with its plane's settings."""
        ...

    def collect(self, timeout_s: float) -> list[NDArray[np.uint16]]:
        """The frames of the armed planes, in order; raise :class:`CameraTimeout` when some are missing."""
        ...

    def close(self) -> None: ...


def open_camera(url: str, config: CameraConfig) -> Camera:
    """Open the device camera at ``url`` (``replay://DIR``, ``opencv://<index|path>``).

    ``sim://`` (the virtual bench, :class:`edge.bench.camera.SimCamera`) is opened by
    :func:`edge.bench.daemon.build_bench_pipeline`: the device runtime never imports the simulator.
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise CameraError(f"camera URL {url!r} has no scheme; use sim://, replay://DIR or opencv://<index|path>")
    if scheme == "sim":
        raise CameraError("sim:// is the virtual bench's camera, not a device camera: build the daemon with "
                          "edge.bench.daemon.build_bench_pipeline (`stainless-edge run` does for sim:// URLs)")
    if scheme == "replay":
        from edge.device.cameras.replay import ReplayCamera

        return ReplayCamera(rest)
    if scheme == "opencv":
        from edge.device.cameras.opencv import OpenCvCamera

        return OpenCvCamera(rest, black_level=config.black_level_adu)
    raise CameraError(f"unknown camera URL scheme {scheme!r} in {url!r}; valid: sim://, replay://DIR, "
                      "opencv://<index|path>")


__all__ = ["Camera", "open_camera"]
