"""LED array geometry: where every LED sits relative to the sample and what it illuminates with.

Coordinates are millimetres relative to the field centre: x and y in the sample plane, and
``z_mm`` the distance of the LED below the sample along the optical axis. The array lights the
sample from below, so ``z_mm`` must be positive (an LED at ``z_mm <= 0`` would sit in or behind the
sample, which transmitted illumination cannot do).

The illumination numerical aperture of an LED is the sine of the angle between its ray to the
field centre and the optical axis, split into per-axis components ``na_x = x / r`` and
``na_y = y / r`` (the direction cosines; the tilted plane wave has spatial frequency
``(na_x, na_y) / λ``). An LED is brightfield when its NA is below the objective NA, darkfield
otherwise.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from firmware_bridge.errors import GeometryError

#: RGB centre wavelengths (nm) of the colour channels of a typical RGB LED array.
RGB_WAVELENGTHS_NM: dict[str, float] = {"r": 630.0, "g": 532.0, "b": 475.0}


@dataclass(frozen=True)
class Led:
    """One LED: its index on the controller and its position (mm) relative to the field centre."""

    index: int
    x_mm: float
    y_mm: float
    z_mm: float

    @property
    def distance_mm(self) -> float:
        return math.sqrt(self.x_mm**2 + self.y_mm**2 + self.z_mm**2)

    @property
    def na_x(self) -> float:
        return self.x_mm / self.distance_mm

    @property
    def na_y(self) -> float:
        return self.y_mm / self.distance_mm

    @property
    def na(self) -> float:
        """Illumination NA: sin of the angle to the optical axis."""
        return math.hypot(self.x_mm, self.y_mm) / self.distance_mm

    @property
    def angle_deg(self) -> float:
        return math.degrees(math.atan2(math.hypot(self.x_mm, self.y_mm), self.z_mm))


@dataclass(frozen=True)
class ArrayGeometry:
    """An LED array under a given objective.

    ``leds[i].index == i`` always: the controller addresses LEDs by that index.
    """

    name: str
    leds: tuple[Led, ...]
    objective_na: float
    objective_magnification: float
    wavelengths_nm: dict[str, float] = field(default_factory=lambda: dict(RGB_WAVELENGTHS_NM))
    description: str = ""

    def __post_init__(self) -> None:
        if not self.leds:
            raise GeometryError(f"geometry {self.name!r} has no LEDs; expected at least one")
        for i, led in enumerate(self.leds):
            if led.index != i:
                raise GeometryError(
                    f"geometry {self.name!r}: LED at position {i} has index {led.index}; "
                    "expected indices 0..N-1 in order"
                )
            if not all(math.isfinite(v) for v in (led.x_mm, led.y_mm, led.z_mm)):
                raise GeometryError(f"geometry {self.name!r}: LED {i} has a non-finite position")
            if led.z_mm <= 0:
                raise GeometryError(
                    f"geometry {self.name!r}: LED {i} is at z = {led.z_mm} mm, i.e. behind or in the "
                    "sample plane; transmitted illumination needs z > 0 (distance below the sample)"
                )
        if not 0.0 < self.objective_na < 1.0:
            raise GeometryError(
                f"geometry {self.name!r}: objective NA {self.objective_na} is impossible for a dry "
                "objective; expected 0 < NA < 1"
            )
        if self.objective_magnification <= 0:
            raise GeometryError(
                f"geometry {self.name!r}: magnification {self.objective_magnification} must be > 0"
            )
        if not self.wavelengths_nm or any(w <= 0 for w in self.wavelengths_nm.values()):
            raise GeometryError(
                f"geometry {self.name!r}: wavelengths {self.wavelengths_nm} must be positive (nm)"
            )

    # -- classification -------------------------------------------------------------------
    def is_brightfield(self, index: int) -> bool:
        """True when LED ``index`` lights the field inside the objective NA."""
        return self.led(index).na < self.objective_na

    @cached_property
    def brightfield_indices(self) -> tuple[int, ...]:
        return tuple(led.index for led in self.leds if led.na < self.objective_na)

    @cached_property
    def darkfield_indices(self) -> tuple[int, ...]:
        return tuple(led.index for led in self.leds if led.na >= self.objective_na)

    @property
    def channels(self) -> tuple[str, ...]:
        return tuple(self.wavelengths_nm)

    @property
    def darkfield_angle_deg(self) -> float:
        """Illumination angle above which an LED is darkfield: arcsin(NA_obj)."""
        return math.degrees(math.asin(self.objective_na))

    def led(self, index: int) -> Led:
        if not 0 <= index < len(self.leds):
            raise GeometryError(
                f"LED index {index} is out of range for {self.name!r}: valid 0..{len(self.leds) - 1}"
            )
        return self.leds[index]

    def with_objective(self, na: float, magnification: float | None = None) -> ArrayGeometry:
        """The same array under another objective."""
        mag = self.objective_magnification if magnification is None else magnification
        return ArrayGeometry(self.name, self.leds, na, mag, dict(self.wavelengths_nm), self.description)

    # -- serialisation --------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "objective_na": self.objective_na,
            "objective_magnification": self.objective_magnification,
            "wavelengths_nm": dict(self.wavelengths_nm),
            "leds": [[led.x_mm, led.y_mm, led.z_mm] for led in self.leds],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ArrayGeometry:
        try:
            leds = tuple(Led(i, float(x), float(y), float(z)) for i, (x, y, z) in enumerate(data["leds"]))
            return cls(
                name=str(data["name"]),
                leds=leds,
                objective_na=float(data["objective_na"]),
                objective_magnification=float(data["objective_magnification"]),
                wavelengths_nm={str(k): float(v) for k, v in data["wavelengths_nm"].items()},
            )
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, GeometryError):
                raise
            raise GeometryError(
                "geometry dict is malformed: expected keys name, objective_na, objective_magnification, "
                f"wavelengths_nm and leds ([[x, y, z] mm, ...]); got {exc!r}"
            ) from exc


def _spherical(index: int, radius_mm: float, angle_deg: float, azimuth_deg: float) -> Led:
    t, p = math.radians(angle_deg), math.radians(azimuth_deg)
    return Led(
        index,
        radius_mm * math.sin(t) * math.cos(p),
        radius_mm * math.sin(t) * math.sin(p),
        radius_mm * math.cos(t),
    )


#: thesis-43 layout (documented in the README): angles of the 8 LEDs on each arm, in degrees.
THESIS_ARM_ANGLES_DEG = (10.0, 16.0, 24.5, 30.0, 35.5, 42.0, 49.5, 57.0)
THESIS_PLATE_ANGLE_DEG = 7.0
THESIS_RADIUS_MM = 60.0


def thesis_43() -> ArrayGeometry:
    """The 43-LED array of seed 000 under its 20x / 0.4 NA dry objective.

    * LEDs 0-2: a bottom plate 60 mm below the sample, 7.4 mm off axis (7°), at azimuths
      90°, 210° and 330°.
    * LEDs 3-42: five arms at azimuths 90° + 72°·a (a = 0..4), LED ``3 + 8a + j``. Each arm is an
      arc of radius 60 mm around the field centre (every arm LED equally far from the sample)
      with angles 10°, 16° (brightfield), 24.5°, 30°, 35.5° (darkfield ≤ 36°), 42°, 49.5°, 57°.
    """
    leds: list[Led] = []
    for k in range(3):
        az = math.radians(90.0 + 120.0 * k)
        r = THESIS_RADIUS_MM * math.tan(math.radians(THESIS_PLATE_ANGLE_DEG))
        leds.append(Led(k, r * math.cos(az), r * math.sin(az), THESIS_RADIUS_MM))
    for arm in range(5):
        for j, angle in enumerate(THESIS_ARM_ANGLES_DEG):
            leds.append(_spherical(3 + 8 * arm + j, THESIS_RADIUS_MM, angle, 90.0 + 72.0 * arm))
    return ArrayGeometry(
        "thesis-43",
        tuple(leds),
        objective_na=0.4,
        objective_magnification=20.0,
        description="seed 000's array: 3 plate LEDs + 5 arms x 8, up to 57°, 20x/0.4 NA",
    )


#: sci.round (illuminate): LEDs per concentric ring and the ring pitch on the board.
SCI_ROUND_RING_COUNTS = (1, 8, 16, 24, 36, 48, 56, 68)
SCI_ROUND_RING_PITCH_MM = 6.2
SCI_ROUND_DISTANCE_MM = 50.0


def sci_round_257() -> ArrayGeometry:
    """illuminate's ``sci.round`` board: 257 single-colour (630 nm) LEDs on 8 concentric rings.

    Ring k has radius 6.2·k mm; LEDs are numbered from the -y direction, turning clockwise
    (as the board's position table does). The planar board sits ``SCI_ROUND_DISTANCE_MM`` below
    the sample (the firmware's ``sad`` command changes this). Shown under a 10x / 0.25 objective.
    """
    leds: list[Led] = []
    for ring, count in enumerate(SCI_ROUND_RING_COUNTS):
        radius = SCI_ROUND_RING_PITCH_MM * ring
        for j in range(count):
            az = math.radians(-90.0 - 360.0 * j / count)
            leds.append(Led(len(leds), radius * math.cos(az), radius * math.sin(az), SCI_ROUND_DISTANCE_MM))
    return ArrayGeometry(
        "sci-round-257",
        tuple(leds),
        objective_na=0.25,
        objective_magnification=10.0,
        wavelengths_nm={"r": 630.0},
        description="illuminate sci.round r1: 257 red LEDs on 8 rings, planar, 50 mm below the sample",
    )


#: Built-in profiles by name. One literal dict: unknown names list these.
PROFILES: dict[str, Callable[[], ArrayGeometry]] = {
    "thesis-43": thesis_43,
    "sci-round-257": sci_round_257,
}


def geometry_from_positions(
    name: str,
    positions_mm: Sequence[Sequence[float]],
    objective_na: float,
    objective_magnification: float,
    wavelengths_nm: dict[str, float] | None = None,
) -> ArrayGeometry:
    """A geometry from a list of (x, y, z) positions in mm (e.g. read from the controller)."""
    leds = tuple(Led(i, float(p[0]), float(p[1]), float(p[2])) for i, p in enumerate(positions_mm))
    return ArrayGeometry(
        name, leds, objective_na, objective_magnification, dict(wavelengths_nm or RGB_WAVELENGTHS_NM)
    )
