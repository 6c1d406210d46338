"""Microscope rigs described in TOML: an LED array (grids, rings, explicit lists), its colours, the
objective and the camera pixel.

A rig file names one or more LED groups; their LEDs are numbered in file order, group after group,
each group in its own order (a grid lit ``raster`` row by row, or in a square ``spiral`` out from
its centre). Example (the built-in ``uconn-15x15``)::

    name = "uconn-15x15"
    description = "UConn FPM rig: central 15x15 LEDs of a 4 mm grid, 90.88 mm below, 2x/0.1"
    wavelengths_nm = { r = 630.0, g = 532.0, b = 475.0 }

    [objective]
    na = 0.1
    magnification = 2.0
    immersion_n = 1.0

    [camera]
    pixel_um = 3.69               # 1.845 µm at the sample through the 2x

    [[leds]]
    kind = "grid"                 # grid | ring | list
    rows = 15
    cols = 15
    pitch_mm = 4.0
    distance_mm = 90.88           # LED plane below the sample
    rotation_deg = 0.0            # about the optical axis, +x towards +y
    offset_mm = [0.0, 0.0]        # of the grid centre from the field centre
    order = "spiral"              # raster | spiral

    # [[leds]] kind = "ring": count, radius_mm, distance_mm, start_deg (first LED's azimuth),
    #          clockwise (false: counter-clockwise); kind = "list": positions_mm = [[x, y, z], ...]

Unknown keys, missing keys and impossible values are refused with the key's name. A rig name or a
path to a ``.toml`` file works wherever a profile name does (:func:`get_profile`, which lives here and
not in :mod:`firmware_bridge.geometry` because rigs build on geometry).
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from firmware_bridge.errors import GeometryError
from firmware_bridge.geometry import PROFILES, RGB_WAVELENGTHS_NM, ArrayGeometry, Led

#: Camera pixel (µm) of the built-in profiles that are not rig files (the simulator's camera).
DEFAULT_CAMERA_PIXEL_UM = 5.86

GRID_ORDERS = ("raster", "spiral")
_KEYS = {
    "top": {"name", "description", "wavelengths_nm", "objective", "camera", "leds"},
    "objective": {"na", "magnification", "immersion_n"},
    "camera": {"pixel_um"},
    "grid": {"kind", "rows", "cols", "pitch_mm", "distance_mm", "rotation_deg", "offset_mm", "order"},
    "ring": {"kind", "count", "radius_mm", "distance_mm", "start_deg", "clockwise", "offset_mm"},
    "list": {"kind", "positions_mm"},
}


@dataclass(frozen=True)
class Rig:
    """An LED array under an objective (:class:`ArrayGeometry`) plus what the geometry does not
    carry: the camera pixel (µm, on the sensor) and the immersion index of the objective."""

    geometry: ArrayGeometry
    camera_pixel_um: float = DEFAULT_CAMERA_PIXEL_UM
    immersion_n: float = 1.0

    @property
    def name(self) -> str:
        return self.geometry.name

    @property
    def sample_pixel_um(self) -> float:
        """Camera pixel projected onto the sample (µm)."""
        return self.camera_pixel_um / self.geometry.objective_magnification


def spiral_order(rows: int, cols: int) -> list[tuple[int, int]]:
    """Grid cells ``(col, row)`` offsets from the centre in a square spiral out from the centre:
    centre, one step +x, then +y, −x, −y with run lengths 1, 1, 2, 2, 3, 3, ... (cells outside a
    non-square grid are skipped). Ring k of a square grid starts at (k, 1 − k)."""
    half_c, half_r = (cols - 1) / 2, (rows - 1) / 2
    out: list[tuple[int, int]] = [(0, 0)]
    x = y = 0
    run, d = 1, 0
    steps = ((1, 0), (0, 1), (-1, 0), (0, -1))
    while len(out) < rows * cols:
        for _ in range(2):
            dx, dy = steps[d % 4]
            for _ in range(run):
                x, y = x + dx, y + dy
                if abs(x) <= half_c and abs(y) <= half_r:
                    out.append((x, y))
            d += 1
        run += 1
        if run > 2 * max(rows, cols) + 2:
            raise GeometryError(f"spiral order needs an odd-sized grid around a centre LED, got {rows}x{cols}")
    return out


def _check_keys(table: Mapping[str, Any], kind: str, where: str) -> None:
    unknown = sorted(set(table) - _KEYS[kind])
    if unknown:
        valid = ", ".join(sorted(_KEYS[kind]))
        raise GeometryError(f"rig {where}: unknown key(s) {', '.join(unknown)}; valid: {valid}")


def _num(table: Mapping[str, Any], key: str, where: str, default: float | None = None, *,
         positive: bool = False) -> float:
    if key not in table:
        if default is None:
            raise GeometryError(f"rig {where}: missing key {key!r}")
        return default
    value = table[key]
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise GeometryError(f"rig {where}: {key} must be a number, got {value!r}")
    if positive and value <= 0:
        raise GeometryError(f"rig {where}: {key} must be > 0, got {value!r}")
    return float(value)


def _count(table: Mapping[str, Any], key: str, where: str) -> int:
    value = table.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise GeometryError(f"rig {where}: {key} must be a positive integer, got {value!r}")
    return value


def _offset(table: Mapping[str, Any], where: str) -> tuple[float, float]:
    value = table.get("offset_mm", [0.0, 0.0])
    if not isinstance(value, list | tuple) or len(value) != 2:
        raise GeometryError(f"rig {where}: offset_mm must be [x, y] in mm, got {value!r}")
    return (_num({"x": value[0]}, "x", f"{where} offset_mm"), _num({"y": value[1]}, "y", f"{where} offset_mm"))


def _grid(table: Mapping[str, Any], where: str) -> list[tuple[float, float, float]]:
    rows, cols = _count(table, "rows", where), _count(table, "cols", where)
    pitch = _num(table, "pitch_mm", where, positive=True)
    z = _num(table, "distance_mm", where, positive=True)
    rot = math.radians(_num(table, "rotation_deg", where, 0.0))
    ox, oy = _offset(table, where)
    order = table.get("order", "raster")
    if order not in GRID_ORDERS:
        raise GeometryError(f"rig {where}: order must be one of {', '.join(GRID_ORDERS)}, got {order!r}")
    if order == "spiral":
        cells = [(float(c), float(r)) for c, r in spiral_order(rows, cols)]
    else:
        cells = [(c - (cols - 1) / 2, r - (rows - 1) / 2) for r in range(rows) for c in range(cols)]
    cos_r, sin_r = math.cos(rot), math.sin(rot)
    return [(ox + pitch * (cos_r * c - sin_r * r), oy + pitch * (sin_r * c + cos_r * r), z) for c, r in cells]


def _ring(table: Mapping[str, Any], where: str) -> list[tuple[float, float, float]]:
    count = _count(table, "count", where)
    radius = _num(table, "radius_mm", where, 0.0)
    z = _num(table, "distance_mm", where, positive=True)
    start = math.radians(_num(table, "start_deg", where, 0.0))
    sign = -1.0 if table.get("clockwise", False) else 1.0
    ox, oy = _offset(table, where)
    return [(ox + radius * math.cos(start + sign * 2 * math.pi * j / count),
             oy + radius * math.sin(start + sign * 2 * math.pi * j / count), z) for j in range(count)]


def _list(table: Mapping[str, Any], where: str) -> list[tuple[float, float, float]]:
    pos = table.get("positions_mm")
    if not isinstance(pos, list) or not pos or any(not isinstance(p, list) or len(p) != 3 for p in pos):
        raise GeometryError(f"rig {where}: positions_mm must be a non-empty list of [x, y, z] (mm), got {pos!r}")
    return [tuple(_num({"v": v}, "v", f"{where} positions_mm") for v in p) for p in pos]  # type: ignore[misc]


_GROUPS = {"grid": _grid, "ring": _ring, "list": _list}


def _led_positions(groups: Any) -> list[tuple[float, float, float]]:
    if not isinstance(groups, list) or not groups:
        raise GeometryError("rig: expected at least one [[leds]] group (kind = grid, ring or list)")
    out: list[tuple[float, float, float]] = []
    for g, table in enumerate(groups):
        where = f"[[leds]] #{g + 1}"
        kind = table.get("kind") if isinstance(table, dict) else None
        if kind not in _GROUPS:
            raise GeometryError(f"rig {where}: kind must be one of {', '.join(_GROUPS)}, got {kind!r}")
        _check_keys(table, kind, where)
        out += _GROUPS[kind](table, where)
    return out


def rig_from_dict(data: Mapping[str, Any]) -> Rig:
    """A :class:`Rig` from a parsed rig file (see the module docstring)."""
    _check_keys(data, "top", "file")
    name = data.get("name")
    if not isinstance(name, str) or not name:
        raise GeometryError(f"rig: name must be a non-empty string, got {name!r}")
    obj, cam = data.get("objective", {}), data.get("camera", {})
    _check_keys(obj, "objective", "[objective]")
    _check_keys(cam, "camera", "[camera]")
    waves = data.get("wavelengths_nm", RGB_WAVELENGTHS_NM)
    if not isinstance(waves, dict) or not waves:
        raise GeometryError(f"rig: wavelengths_nm must be a table such as {{ r = 630.0 }}, got {waves!r}")
    wl = {str(k): _num(waves, k, "wavelengths_nm", positive=True) for k in waves}
    immersion = _num(obj, "immersion_n", "[objective]", 1.0, positive=True)
    leds = tuple(Led(i, *p) for i, p in enumerate(_led_positions(data.get("leds"))))
    geometry = ArrayGeometry(name, leds, _num(obj, "na", "[objective]") / immersion,
                             _num(obj, "magnification", "[objective]", positive=True), wl,
                             str(data.get("description", "")))
    return Rig(geometry, _num(cam, "pixel_um", "[camera]", DEFAULT_CAMERA_PIXEL_UM, positive=True), immersion)


def load_rig(path: str | Path) -> Rig:
    """Read a rig file; errors name the file and the offending key."""
    p = Path(path)
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except OSError as exc:
        raise GeometryError(f"cannot read rig file {p}: {exc.strerror or exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise GeometryError(f"rig file {p} is not valid TOML: {exc}") from exc
    try:
        return rig_from_dict(data)
    except GeometryError as exc:
        raise GeometryError(f"{p}: {exc}") from exc


#: UConn Smart Imaging Lab FPM rig (data set ``uconn-fpm-bloodsmear``): the central 15x15 LEDs of a
#: 32x32, 4 mm-pitch array 90.88 mm below the sample, lit in a square spiral from the centre, under
#: a Nikon 2x / 0.1 objective with 1.845 µm pixels at the sample.
UCONN_15X15: dict[str, Any] = {
    "name": "uconn-15x15",
    "description": "UConn FPM rig: central 15x15 LEDs of a 4 mm grid 90.88 mm below, spiral order, 2x/0.1",
    "wavelengths_nm": {"r": 630.0, "g": 532.0, "b": 475.0},
    "objective": {"na": 0.1, "magnification": 2.0},
    "camera": {"pixel_um": 3.69},
    "leds": [{"kind": "grid", "rows": 15, "cols": 15, "pitch_mm": 4.0, "distance_mm": 90.88,
              "order": "spiral"}],
}

#: Built-in rigs by name (one literal dict).
RIGS: dict[str, Mapping[str, Any]] = {"uconn-15x15": UCONN_15X15}


def get_rig(name: str) -> Rig:
    """A built-in rig, a rig file (path ending ``.toml``) or a built-in profile (with the
    simulator's default camera pixel)."""
    if name in PROFILES:
        return Rig(PROFILES[name]())
    if name in RIGS:
        return rig_from_dict(RIGS[name])
    if name.endswith(".toml"):
        return load_rig(name)
    raise GeometryError(
        f"unknown LED array profile {name!r}; valid profiles: {', '.join(sorted([*PROFILES, *RIGS]))} "
        "or a rig file (path ending .toml)"
    )


def get_profile(name: str) -> ArrayGeometry:
    """The LED array called ``name``: a built-in profile (:data:`firmware_bridge.geometry.PROFILES`),
    a built-in rig or the geometry of a rig file (a path ending ``.toml``)."""
    return PROFILES[name]() if name in PROFILES else get_rig(name).geometry
