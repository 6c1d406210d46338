"""A real LED-array stack (UConn format, :mod:`sim.realstack`) as a field of a raw scan, so that
``replay://`` plays real frames through acquisition, QC and detection.

The stack becomes the NA-range recipe ``na0-<max NA>`` of its rig: the brightfield pattern (the
mean of the brightfield LED images: lit together, each LED's share of the light), then every LED
alone, darkfield LEDs at a low and a high exposure. HDR intensities are turned into 16-bit ADU the
way a camera with per-LED exposure would record them: each plane's exposure puts its 99.5th
percentile at 70 % of full scale (as :meth:`sim.microscope.Microscope.calibrate` does), "high" is
5x "low" and clips. The sidecar records each plane's exposure, so ADU / exposure is proportional
to the HDR intensity again (exposure 1 ms = 1000 ADU per HDR unit).
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from core import rawscan
from firmware_bridge.recipes import StackRecipe, resolve_recipe
from sim.microscope import CALIBRATION_PERCENTILE, HIGH_EXPOSURE_FACTOR, TARGET_FRACTION
from sim.realstack import DEFAULT_RIG, RealStack, read_real_stack

BIT_DEPTH = 16
MAX_ADU = 2**BIT_DEPTH - 1
ADU_PER_UNIT_MS = 1000.0


def _exposure_ms(image: NDArray[np.float32]) -> float:
    level = float(np.percentile(image, CALIBRATION_PERCENTILE))
    return TARGET_FRACTION * MAX_ADU / ADU_PER_UNIT_MS / max(level, 1e-9)


def stack_planes(stack: RealStack, recipe: StackRecipe) -> tuple[NDArray[np.uint16], list[dict[str, Any]]]:
    """Planes ``(N, 1, H, W)`` uint16 of ``recipe`` and their sidecar entries."""
    g = recipe.geometry
    bf = g.brightfield_indices
    planes, meta = [], []
    for i, ch in enumerate(recipe.channels):
        image = stack.images[list(bf)].mean(axis=0) if ch.led is None else stack.images[ch.led]
        exp = _exposure_ms(image) * (HIGH_EXPOSURE_FACTOR if ch.exposure == "high" else 1.0)
        adu = np.clip(np.rint(image * exp * ADU_PER_UNIT_MS), 0, MAX_ADU).astype(np.uint16)
        planes.append(adu[None])
        led = None if ch.led is None else g.leds[ch.led]
        meta.append({"plane": i, "channel": ch.name, "led": ch.led, "exposure_class": ch.exposure,
                     "exposure_ms": round(exp, 6), "gain": 1.0,
                     "leds_lit": list(bf) if led is None else [ch.led],
                     "na_x": None if led is None else led.na_x, "na_y": None if led is None else led.na_y})
    return np.stack(planes), meta


def import_real_stack(path: str | Path, out: str | Path, rig_name: str = DEFAULT_RIG) -> dict[str, Any]:
    """Write ``path`` as field 0 of a raw scan at ``out``; returns a summary (JSON-ready)."""
    stack = read_real_stack(path)
    rig = stack.rig(rig_name)
    g = rig.geometry
    top = math.ceil(max(led.na for led in g.leds) * 100 + 1e-9) / 100
    recipe = resolve_recipe(f"na0-{top:g}", g)
    pixels, planes = stack_planes(stack, recipe)
    meta = {
        "schema_version": rawscan.SCHEMA_VERSION, "kind": "unstained", "field": 0,
        "stage_position_um": [0.0, 0.0], "pixel_size_um": rig.sample_pixel_um,
        "objective": {"na": g.objective_na, "magnification": g.objective_magnification,
                      "immersion_n": rig.immersion_n},
        "camera": {"pixel_um": rig.camera_pixel_um, "bit_depth": BIT_DEPTH, "black_level_adu": 0,
                   "full_well_e": float(MAX_ADU)},
        "color_channels": list(g.channels), "wavelengths_nm": [g.wavelengths_nm[c] for c in g.channels],
        "recipe": recipe.to_dict(), "geometry": g.to_dict(), "planes": planes,
        "source": {"file": str(Path(path)), "defocus_um": stack.defocus_um, "format": "uconn-fpm-mat"},
    }
    config = {"source": str(Path(path)), "rig": rig_name, "recipe": recipe.id}
    out = Path(out)
    rawscan.prepare_output(out, config)
    field = rawscan.write_image_field(out, 0, pixels, meta)
    return {"field": str(field), "planes": len(planes), "recipe": recipe.id, "rig": rig_name,
            "channel": g.channels[0], "pixel_size_um": rig.sample_pixel_um,
            "written": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
