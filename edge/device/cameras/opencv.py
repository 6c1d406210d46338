"""A UVC/V4L2 camera (or a video file) through ``cv2.VideoCapture``. Thin by design.

Exposure is set through ``CAP_PROP_EXPOSURE`` (units are driver-specific; V4L2 uses 100 µs steps)
and gain through ``CAP_PROP_GAIN``. UVC cameras have no trigger input: triggered mode is refused.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
from numpy.typing import NDArray

from core.camera import Exposure
from edge.device.errors import CameraError, CameraTimeout
from edge.device.stack import FieldRequest, PlaneInfo


class OpenCvCamera:
    def __init__(self, source: str, *, black_level: float = 0.0, pixel_um: float = 5.86 / 20) -> None:
        self.url = f"opencv://{source}"
        self._cap = cv2.VideoCapture(int(source) if source.isdigit() else source)
        if not self._cap.isOpened():
            raise CameraError(f"{self.url}: cv2.VideoCapture cannot open {source!r}; check the device index "
                              "(ls /dev/video*), permissions (video group) or the file path")
        self.colours: tuple[str, ...] = ("r", "g", "b")
        self.pixel_um = pixel_um
        self.max_adu = 255
        self.black_level = black_level
        self._last: Exposure | None = None

    def calibration(self, recipe_id: str) -> None:
        return None

    def move_to(self, request: FieldRequest) -> None:
        return None

    def grab(self, plane: PlaneInfo, timeout_s: float) -> NDArray[np.uint16]:
        if plane.exposure != self._last:
            self._cap.set(cv2.CAP_PROP_EXPOSURE, plane.exposure.exposure_ms * 10.0)
            self._cap.set(cv2.CAP_PROP_GAIN, plane.exposure.gain)
            self._last = plane.exposure
        ok, frame = self._cap.read()
        if not ok or frame is None:
            raise CameraTimeout(f"{self.url}: no frame (device gone or end of file)")
        rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB) if frame.ndim == 3 else np.repeat(frame[..., None], 3, -1)
        return np.ascontiguousarray(np.moveaxis(rgb, -1, 0)).astype(np.uint16)

    def arm(self, planes: Sequence[PlaneInfo]) -> None:
        raise CameraError(f"{self.url}: UVC cameras have no trigger input; use acquisition.mode = 'host'")

    def collect(self, timeout_s: float) -> list[NDArray[np.uint16]]:
        raise CameraError(f"{self.url}: triggered capture is not supported")

    def close(self) -> None:
        self._cap.release()
