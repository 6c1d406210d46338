"""PLS stack recipes: which images make up a stack, in which order.

A recipe is data (:class:`RecipeSpec`): an NA range of single LEDs, whether the brightfield
pattern leads the stack, and the exposures darkfield LEDs are captured at. Resolving it against a
geometry gives a :class:`StackRecipe`, the ordered channel list that is a contract between the
acquisition, the dataset store and the model bundle: its ``id`` names it and its ``hash`` changes
whenever the channels or the illumination angles behind them change.

Channel order: the brightfield pattern first (if present), then single LEDs by increasing index;
a darkfield LED captured at two exposures contributes ``low`` then ``high``.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import re
from dataclasses import dataclass
from typing import Literal

from firmware_bridge.errors import RecipeError
from firmware_bridge.geometry import ArrayGeometry

Exposure = Literal["normal", "low", "high"]
ChannelKind = Literal["brightfield", "led"]

_NA_TOL = 1e-6


@dataclass(frozen=True)
class Channel:
    """One image of a stack: the brightfield pattern or one LED, at an exposure class."""

    kind: ChannelKind
    led: int | None
    exposure: Exposure

    @property
    def name(self) -> str:
        """Stable text id: ``bf``, ``led12``, ``led30:low``, ``led30:high``."""
        if self.kind == "brightfield":
            return "bf"
        suffix = "" if self.exposure == "normal" else f":{self.exposure}"
        return f"led{self.led}{suffix}"

    @classmethod
    def parse(cls, name: str) -> Channel:
        if name == "bf":
            return cls("brightfield", None, "normal")
        m = re.fullmatch(r"led(\d+)(?::(low|high))?", name)
        if not m:
            raise RecipeError(f"channel name {name!r} is malformed; expected 'bf', 'ledN', 'ledN:low|high'")
        exposure: Exposure = m.group(2) or "normal"  # type: ignore[assignment]
        return cls("led", int(m.group(1)), exposure)


@dataclass(frozen=True)
class RecipeSpec:
    """A recipe as data: single LEDs with ``min_na <= NA <= max_na`` (+ the brightfield pattern)."""

    id: str
    description: str
    max_na: float = 1.0
    min_na: float = 0.0
    brightfield: bool = True
    single_leds: bool = True
    darkfield_exposures: tuple[Exposure, ...] = ("low", "high")

    def __post_init__(self) -> None:
        if not 0.0 <= self.min_na <= self.max_na <= 1.0:
            raise RecipeError(
                f"recipe {self.id!r}: NA range [{self.min_na}, {self.max_na}] is invalid; "
                "expected 0 <= min_na <= max_na <= 1"
            )
        if not self.darkfield_exposures or not set(self.darkfield_exposures) <= {"low", "high"}:
            raise RecipeError(
                f"recipe {self.id!r}: darkfield exposures {self.darkfield_exposures} must be a "
                "non-empty subset of ('low', 'high')"
            )
        if not (self.brightfield or self.single_leds):
            raise RecipeError(f"recipe {self.id!r} selects no image at all")


def _na_of_angle(deg: float) -> float:
    return math.sin(math.radians(deg))


#: The recipes of seed 000's ablation (table 3.1), by id. Angles are limits on the LED's angle to
#: the optical axis; the thesis array places no LED near these limits.
RECIPES: dict[str, RecipeSpec] = {
    "full": RecipeSpec("full", "brightfield + every LED, darkfield at low and high exposure (74 on thesis-43)"),
    "full-nohe": RecipeSpec(
        "full-nohe", "brightfield + every LED, darkfield at low exposure only (44)", darkfield_exposures=("low",)
    ),
    "le36": RecipeSpec("le36", "brightfield + LEDs ≤ 36°, darkfield at both exposures (44)", _na_of_angle(36)),
    "le36-nohe": RecipeSpec(
        "le36-nohe", "brightfield + LEDs ≤ 36°, darkfield at low exposure (29)", _na_of_angle(36),
        darkfield_exposures=("low",),
    ),
    "le18": RecipeSpec("le18", "brightfield + LEDs ≤ 18° (all brightfield; 14)", _na_of_angle(18)),
    "le8": RecipeSpec("le8", "brightfield + LEDs ≤ 8° (4)", _na_of_angle(8)),
    "brightfield": RecipeSpec("brightfield", "the brightfield pattern alone (1)", single_leds=False),
}

_NA_RANGE = re.compile(r"na(?P<lo>\d*\.?\d+)-(?P<hi>\d*\.?\d+)(?P<nohe>-nohe)?")


def parse_recipe_spec(name: str) -> RecipeSpec:
    """A named recipe, or an NA-range recipe for any array: ``na0-0.6`` or ``na0.1-0.6-nohe``."""
    if name in RECIPES:
        return RECIPES[name]
    m = _NA_RANGE.fullmatch(name)
    if m:
        exposures: tuple[Exposure, ...] = ("low",) if m.group("nohe") else ("low", "high")
        return RecipeSpec(
            name, f"brightfield + LEDs with {m.group('lo')} <= NA <= {m.group('hi')}",
            max_na=float(m.group("hi")), min_na=float(m.group("lo")), darkfield_exposures=exposures,
        )
    raise RecipeError(
        f"unknown stack recipe {name!r}; valid recipes: {', '.join(RECIPES)}, "
        "or an NA range such as 'na0-0.6' / 'na0.1-0.6-nohe'"
    )


@dataclass(frozen=True)
class StackRecipe:
    """A recipe resolved against a geometry: the ordered channel list and its identity."""

    id: str
    geometry: ArrayGeometry
    channels: tuple[Channel, ...]

    def __len__(self) -> int:
        return len(self.channels)

    @property
    def channel_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.channels)

    @property
    def leds(self) -> tuple[int, ...]:
        """Distinct single LEDs the recipe lights, in channel order."""
        return tuple(dict.fromkeys(c.led for c in self.channels if c.led is not None))

    @functools.cached_property
    def hash(self) -> str:
        """Content hash (16 hex): channel list + the illumination NA behind each channel (computed once: the
        daemon puts it in every cell's header, and a recipe and its geometry do not change)."""
        g = self.geometry
        payload = {
            "objective_na": round(g.objective_na, 6),
            "wavelengths_nm": g.wavelengths_nm,
            "brightfield_leds": list(g.brightfield_indices),
            "channels": [
                [c.name]
                + ([] if c.led is None else [round(g.leds[c.led].na_x, 6), round(g.leds[c.led].na_y, 6)])
                for c in self.channels
            ],
        }
        blob = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    def indices_of(self, sub: StackRecipe) -> list[int]:
        """Positions in this stack of every channel of ``sub`` (read a sub-recipe without rebuilding)."""
        if sub.geometry.to_dict() != self.geometry.to_dict():
            raise RecipeError(
                f"recipe {sub.id!r} was resolved for {sub.geometry.name!r}, this stack for "
                f"{self.geometry.name!r}; sub-recipes need the same geometry"
            )
        where = {name: i for i, name in enumerate(self.channel_names)}
        missing = [n for n in sub.channel_names if n not in where]
        if missing:
            raise RecipeError(
                f"recipe {sub.id!r} needs channels {missing[:5]}{'...' if len(missing) > 5 else ''} "
                f"that a {self.id!r} stack does not hold; capture a superset recipe (e.g. 'full')"
            )
        return [where[n] for n in sub.channel_names]

    def to_dict(self) -> dict[str, object]:
        return {"id": self.id, "hash": self.hash, "geometry": self.geometry.name,
                "channels": list(self.channel_names)}


def resolve_recipe(recipe: str | RecipeSpec, geometry: ArrayGeometry) -> StackRecipe:
    """Resolve a recipe (name or spec) against ``geometry`` into its ordered channel list."""
    spec = parse_recipe_spec(recipe) if isinstance(recipe, str) else recipe
    channels: list[Channel] = []
    if spec.brightfield:
        channels.append(Channel("brightfield", None, "normal"))
    if spec.single_leds:
        for led in geometry.leds:
            if not spec.min_na - _NA_TOL <= led.na <= spec.max_na + _NA_TOL:
                continue
            if geometry.is_brightfield(led.index):
                channels.append(Channel("led", led.index, "normal"))
            else:
                channels.extend(Channel("led", led.index, e) for e in ("low", "high")
                                if e in spec.darkfield_exposures)
    if not channels:
        raise RecipeError(
            f"recipe {spec.id!r} selects no image on {geometry.name!r}; LED NAs there range "
            f"{min(led.na for led in geometry.leds):.3f}..{max(led.na for led in geometry.leds):.3f}"
        )
    return StackRecipe(spec.id, geometry, tuple(channels))
