"""Replay a raw scan (``stainless-sim scan`` output or a recording from a device), plane by plane.

``move_to(request)`` selects field ``request.field_id`` of the scan (its index in the scan's field
list); each grab returns the plane whose sidecar entry matches the requested channel: the same
channel name, exposure class and lit LEDs. A request the scan cannot answer is an error, never a
silently substituted frame.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from core import rawscan
from core.camera import Exposure
from edge.device.errors import CameraError, CameraTimeout
from edge.device.stack import FieldRequest, PlaneInfo


class ReplayCamera:
    """A :class:`~edge.device.cameras.Camera` reading the fields of a raw-scan folder."""

    def __init__(self, scan_dir: str | Path) -> None:
        self.url = f"replay://{scan_dir}"
        self.scan_dir = Path(scan_dir)
        self.fields = rawscan.list_fields(self.scan_dir)
        if not self.fields:
            raise CameraError(f"replay://{scan_dir}: no complete field folders under {self.scan_dir}/fields; "
                              "point it at a folder written by `stainless-sim scan`")
        first = self._read(0)
        cam = first.meta.get("camera", {})
        self.colours = tuple(first.meta.get("color_channels", ("r", "g", "b")))
        self.pixel_um = float(first.meta["pixel_size_um"])
        self.max_adu = int(2 ** int(cam.get("bit_depth", 16)) - 1)
        self.black_level = float(cam.get("black_level_adu", 0))
        self._image: rawscan.RawImage | None = first
        self._index = 0
        self._armed: list[PlaneInfo] = []

    def _read(self, index: int) -> rawscan.RawImage:
        if not 0 <= index < len(self.fields):
            raise CameraError(f"replay://{self.scan_dir}: field {index} requested, the scan holds "
                              f"{len(self.fields)} fields (0..{len(self.fields) - 1})")
        try:
            return rawscan.read_image(self.fields[index], "unstained")
        except rawscan.RawScanError as exc:
            raise CameraError(f"replay: {exc}") from exc

    @property
    def meta(self) -> dict[str, Any]:
        """Sidecar of the current field."""
        assert self._image is not None
        return self._image.meta

    def calibration(self, recipe_id: str) -> dict[str, Exposure]:
        assert self._image is not None
        return {p["channel"]: Exposure(float(p["exposure_ms"]), float(p["gain"])) for p in self._image.meta["planes"]}

    def move_to(self, request: FieldRequest) -> None:
        if self._image is None or request.field_id != self._index:
            self._image = self._read(request.field_id)
            self._index = request.field_id

    def _plane(self, plane: PlaneInfo) -> NDArray[np.uint16]:
        assert self._image is not None
        for k, p in enumerate(self._image.meta["planes"]):
            if _matches(p, plane):
                return np.ascontiguousarray(self._image.pixels[k])
        raise CameraError(f"replay://{self.scan_dir} field {self._index} has no plane for channel {plane.name!r} "
                          f"(LEDs {list(plane.leds)[:6]}, exposure {plane.exposure_class}); the scan was made with "
                          "another recipe")

    def grab(self, plane: PlaneInfo, timeout_s: float) -> NDArray[np.uint16]:
        return self._plane(plane)

    def arm(self, planes: Sequence[PlaneInfo]) -> None:
        self._armed = list(planes)

    def collect(self, timeout_s: float) -> list[NDArray[np.uint16]]:
        if not self._armed:
            raise CameraTimeout(f"replay://{self.scan_dir}: collect() without arm()")
        planes, self._armed = self._armed, []
        return [self._plane(p) for p in planes]

    def collect_all(self, planes: Sequence[PlaneInfo]) -> NDArray[np.uint16]:
        """Every plane of ``planes`` of the current field, stacked ``(N, C, H, W)``."""
        return np.stack([self._plane(p) for p in planes])

    def close(self) -> None:
        self._image = None


def _matches(meta: dict[str, Any], plane: PlaneInfo) -> bool:
    return (meta.get("channel") == plane.name and meta.get("exposure_class", "normal") == plane.exposure_class
            and tuple(meta.get("leds_lit", ())) == tuple(plane.leds))
