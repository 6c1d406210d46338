"""The data that flows through the daemon: field requests, plane layouts and captured stacks."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from core.camera import Exposure
from firmware_bridge.plan import channel_leds
from firmware_bridge.recipes import StackRecipe


@dataclass(frozen=True)
class PlaneInfo:
    """One image of a stack: its recipe channel, the LEDs lit, whether it is darkfield, and settings."""

    name: str
    leds: tuple[int, ...]
    darkfield: bool
    angle_deg: float
    exposure_class: str
    exposure: Exposure


def plane_layout(recipe: StackRecipe, calibration: dict[str, Exposure]) -> tuple[PlaneInfo, ...]:
    """Planes of ``recipe`` in channel order with their exposures from the per-channel ``calibration``."""
    g = recipe.geometry
    missing = [c.name for c in recipe.channels if c.name not in calibration]
    if missing:
        raise KeyError(f"calibration table has no entry for channel(s) {missing[:5]}; it must cover recipe "
                       f"{recipe.id!r} ({len(recipe.channels)} channels)")
    planes = []
    for c in recipe.channels:
        led = None if c.led is None else g.led(c.led)
        planes.append(PlaneInfo(
            c.name, channel_leds(c, recipe), led is not None and not g.is_brightfield(led.index),
            0.0 if led is None else led.angle_deg, c.exposure, calibration[c.name]))
    return tuple(planes)


@dataclass(frozen=True)
class FieldRequest:
    """One field to scan: slide and field ids and the stage position (µm) of its top-left corner."""

    slide_id: str
    field_id: int
    stage_um: tuple[float, float]
    scan_id: int = 0


@dataclass
class Stack:
    """A captured PLS stack ``pixels`` ``(N, C, H, W)`` uint16 in recipe order, with its context.

    Times are wall-clock seconds (``time.time()``); ``attempts`` counts captures (1 = first try).
    """

    request: FieldRequest
    pixels: NDArray[np.uint16]
    planes: tuple[PlaneInfo, ...]
    colours: tuple[str, ...]
    pixel_um: float
    black_level: float
    max_adu: int
    t_capture_start: float
    t_capture_end: float
    attempts: int = 1
    extra: dict[str, float] = field(default_factory=dict)
    calibration_id: str = ""  # the calibration file's id (edge.device.calibration); "" = the camera's table

    @property
    def shape(self) -> tuple[int, int]:
        return (int(self.pixels.shape[-2]), int(self.pixels.shape[-1]))

    def plane_indices(self, *, darkfield: bool | None = None, min_angle_deg: float = -math.inf,
                      exposure_class: str | None = None) -> list[int]:
        """Indices of planes that match every given criterion."""
        return [i for i, p in enumerate(self.planes)
                if (darkfield is None or p.darkfield == darkfield) and p.angle_deg > min_angle_deg
                and (exposure_class is None or p.exposure_class == exposure_class)]

    def brightfield_index(self) -> int:
        for i, p in enumerate(self.planes):
            if p.name == "bf":
                return i
        raise KeyError("the stack has no brightfield ('bf') plane")
