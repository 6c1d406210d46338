"""Simulated slide scans written in the raw-scan format a real scanner produces.

One call of :func:`simulate_field` makes everything of one field (pure: arrays + metadata);
:func:`write_field` puts it on disk atomically; :func:`scan` does both for N fields. The on-disk
layout is documented in the README ("Raw-scan format") and read back by :mod:`core.rawscan`.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import NDArray

from core import rawscan
from core.camera import Exposure
from core.config import check
from core.rawscan import FieldData
from firmware_bridge.geometry import ArrayGeometry
from firmware_bridge.recipes import StackRecipe, resolve_recipe
from firmware_bridge.rigs import get_profile
from sim.maps import SampleMaps
from sim.microscope import Microscope, MicroscopeConfig, condenser_na
from sim.optics import Objective
from sim.rasterize import Affine, rasterize
from sim.sample import Smear, SmearConfig, make_smear, wbc_truth
from sim.stain import misregistration, stain_smear

log = logging.getLogger(__name__)

#: 100x / 1.25 NA oil objective of the high-resolution truth, and its condenser NA.
HR_OBJECTIVE = Objective(na=1.25, magnification=100.0, immersion_n=1.515)
HR_CONDENSER_NA = 0.9
OIL_N = 1.515
#: Guard band (camera px) rendered around every field and cropped away.
GUARD_PX = 16


@dataclass(frozen=True)
class ScanConfig:
    """Everything that decides a simulated scan. Saved with every scan (``scan.json``)."""

    profile: str = "thesis-43"
    recipe: str = "full"
    fields: int = 1
    seed: int = 0
    field_size_px: tuple[int, int] = (512, 512)  # (width, height) on the camera
    stained: bool = False
    hr: bool = False
    hr_tile_px: int = 320  # 100x tile edge (px at 0.0586 µm = 18.75 µm, one 64 px 20x crop)
    stain_style: str = "mgg"
    pls_misalignment_rate: float = 0.05  # fraction of fields whose brightfield slipped vs the PLS images
    max_pls_misalignment_um: float = 1.5
    stage_origin_um: tuple[float, float] = (10_000.0, 20_000.0)
    smear: dict[str, Any] = field(default_factory=dict)  # overrides of sim.sample.SmearConfig

    def __post_init__(self) -> None:
        w, h = self.field_size_px
        check("scan", self, fields=(self.fields >= 1, ">= 1"), field_size_px=(w >= 16 and h >= 16, ">= 16x16 px"),
              hr_tile_px=(self.hr_tile_px >= 32, ">= 32"),
              pls_misalignment_rate=(0.0 <= self.pls_misalignment_rate <= 1.0, "0 .. 1"),
              max_pls_misalignment_um=(self.max_pls_misalignment_um >= 0, ">= 0"))
        get_profile(self.profile)  # unknown names raise with the valid list
        SmearConfig.from_dict(self.smear)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class FieldSeeds(NamedTuple):
    """The random streams of field ``index`` of a scan with ``seed``; ``ints`` are the same as integers.

    Streams by position: 0 smear, 1 PLS slip and stack noise, 2 stain, 3 stained misregistration,
    4 stained re-scan noise, 5 100x tiles. Anything that must see the same field as the scan
    writer (the virtual bench camera, its stained truth) derives it here.
    """

    sequences: list[np.random.SeedSequence]
    ints: list[int]


def field_seeds(seed: int, index: int) -> FieldSeeds:
    sequences = np.random.SeedSequence([seed, index]).spawn(6)
    return FieldSeeds(sequences, [int(s.generate_state(1)[0]) for s in sequences])


class Simulator:
    """Holds the microscopes and the exposure table of one scan configuration."""

    def __init__(self, config: ScanConfig) -> None:
        self.config = config
        self.geometry: ArrayGeometry = get_profile(config.profile)
        self.recipe: StackRecipe = resolve_recipe(config.recipe, self.geometry)
        self.smear_config = SmearConfig.from_dict(config.smear)
        self.microscope = Microscope(self.geometry, MicroscopeConfig())
        self.hr_microscope = hr_microscope(self.geometry)
        self.exposures = calibrated_exposures(config.profile, config.recipe)

    @property
    def field_size_um(self) -> tuple[float, float]:
        w, h = self.config.field_size_px
        return (w * self.microscope.pixel_um, h * self.microscope.pixel_um)

    def stage_position_um(self, index: int) -> tuple[float, float]:
        """Top-left corner of field ``index`` on the stage: a row-major raster of abutting fields."""
        per_row = math.ceil(math.sqrt(self.config.fields))
        w, h = self.field_size_um
        x0, y0 = self.config.stage_origin_um
        return (x0 + (index % per_row) * w, y0 + (index // per_row) * h)

    def seeds(self, index: int) -> FieldSeeds:
        """The random streams of field ``index`` (:func:`field_seeds`)."""
        return field_seeds(self.config.seed, index)

    def smear(self, index: int) -> Smear:
        """The (unstained) smear of field ``index``: the same one every time."""
        return make_smear(self.field_size_um, self.seeds(index).ints[0], self.smear_config)

    def stained_truth(self, index: int) -> tuple[NDArray[np.uint16], Smear]:
        """The stained field ``index``, registered to the unstained one: brightfield RGB ``(C, H, W)`` raw ADU
        and the stained smear.

        The same smear, stain and re-scan noise as :meth:`simulate_field`'s stained re-scan, but
        *without* its misregistration, so it lies on the unstained field's pixel grid.
        """
        seeds = self.seeds(index)
        stained = stain_smear(self.smear(index), seeds.ints[2], self.config.stain_style)
        w, h = self.config.field_size_px
        rgb = self.microscope.prepare(self.maps(stained)).render_brightfield_rgb(
            np.random.default_rng(seeds.sequences[4]))
        return np.ascontiguousarray(rgb[:, GUARD_PX:GUARD_PX + h, GUARD_PX:GUARD_PX + w]), stained

    def maps(self, smear: Smear, transform: Affine | None = None) -> SampleMaps:
        """Physical maps on the fine grid with a guard band of ``GUARD_PX`` camera pixels on every
        side (the FFT optics is periodic; the band keeps wrapped light out of the field)."""
        w, h = self.config.field_size_px
        pad_um = GUARD_PX * self.microscope.pixel_um
        tf = transform or Affine()
        cx, cy = smear.size_um[0] / 2, smear.size_um[1] / 2
        padded = dataclasses.replace(tf, shift_um=(tf.shift_um[0] + pad_um, tf.shift_um[1] + pad_um),
                                     center_um=tf.center_um or (cx, cy))
        shape = self.microscope.fine_shape((h + 2 * GUARD_PX, w + 2 * GUARD_PX))
        return rasterize(smear, self.microscope.fine_pixel_um, shape, transform=padded)

    def simulate_field(self, index: int) -> FieldData:
        cfg = self.config
        seeds, ints = self.seeds(index)
        w, h = cfg.field_size_px
        crop = (..., slice(GUARD_PX, GUARD_PX + h), slice(GUARD_PX, GUARD_PX + w))
        smear = self.smear(index)
        rng = np.random.default_rng(seeds[1])
        shift = (0.0, 0.0)
        if rng.random() < cfg.pls_misalignment_rate:
            ang = rng.uniform(0, 2 * math.pi)
            mag = rng.uniform(0.3, 1.0) * cfg.max_pls_misalignment_um
            shift = (mag * math.cos(ang), mag * math.sin(ang))
        field = self.microscope.prepare(self.maps(smear))
        stack = field.render_stack(self.recipe, self.exposures, rng, bf_shift_um=shift)[crop]
        labels = rasterize(smear, self.microscope.pixel_um, (h, w))
        truth = self.truth(index, smear, shift)
        data = FieldData(index, np.ascontiguousarray(stack), self._stack_meta(index), None, None, None, None,
                         truth, np.stack([labels.structure.astype(np.int32), labels.instance]))
        if cfg.stained or cfg.hr:
            stained_smear = stain_smear(smear, ints[2], cfg.stain_style)
            affine = misregistration(ints[3])
            truth["stained_misregistration"] = dataclasses.asdict(affine)
            if cfg.stained:
                stained_field = self.microscope.prepare(self.maps(stained_smear, affine))
                rgb = stained_field.render_brightfield_rgb(np.random.default_rng(seeds[4]))
                data.stained = np.ascontiguousarray(rgb[crop])
                data.stained_meta = self._image_meta(index, "stained", self.microscope)
            if cfg.hr:
                data.hr_tiles, data.hr_meta = self._hr_tiles(index, stained_smear, truth["wbcs"], seeds[5])
        return data

    def _hr_tiles(self, index: int, smear: Smear, wbcs: list[dict[str, Any]],
                  seed: np.random.SeedSequence) -> tuple[NDArray[np.uint16], dict[str, Any]]:
        """100x images centred on every white cell (the seed relocated WBCs by stage position)."""
        m, n = self.hr_microscope, self.config.hr_tile_px
        rng = np.random.default_rng(seed)
        tiles = [render_hr_tile(m, smear, tuple(wbc["center_um"]), n, rng) for wbc in wbcs]
        sx, sy = self.stage_position_um(index)
        centres = [[sx + wbc["center_um"][0], sy + wbc["center_um"][1]] for wbc in wbcs]
        arr = np.stack(tiles) if tiles else np.zeros((0, len(m.channels), n, n), np.uint16)
        meta = self._image_meta(index, "hr", m)
        meta.update(tile_centres_stage_um=centres, condenser_na=HR_CONDENSER_NA, immersion_n=OIL_N)
        return arr, meta

    def truth(self, index: int, smear: Smear, bf_shift_um: tuple[float, float]) -> dict[str, Any]:
        """The truth record of field ``index`` (white cells on the field, centres in px and stage µm)."""
        px = self.microscope.pixel_um
        sx, sy = self.stage_position_um(index)
        fw, fh = self.field_size_um
        wbcs = [w for w in wbc_truth(smear) if 0 <= w["center_um"][0] < fw and 0 <= w["center_um"][1] < fh]
        for wbc in wbcs:
            cx, cy = wbc["center_um"]
            x0, y0, x1, y1 = wbc["bbox_um"]
            wbc["touches_border"] = bool(x0 < 0 or y0 < 0 or x1 > fw or y1 > fh)
            wbc["center_px"] = [cx / px - 0.5, cy / px - 0.5]
            wbc["center_stage_um"] = [sx + cx, sy + cy]
        return {
            "schema_version": rawscan.SCHEMA_VERSION,
            "field": index,
            "wbcs": wbcs,
            "pls_misalignment_um": list(bf_shift_um),
            "stain_style": self.config.stain_style,
            "objects": len(smear.objects),
        }

    def _image_meta(self, index: int, kind: str, m: Microscope) -> dict[str, Any]:
        cam = m.config.camera
        return {
            "schema_version": rawscan.SCHEMA_VERSION,
            "kind": kind,
            "field": index,
            "stage_position_um": list(self.stage_position_um(index)),
            "pixel_size_um": m.pixel_um,
            "objective": {"na": m.objective.na, "magnification": m.objective.magnification,
                          "immersion_n": m.objective.immersion_n},
            "camera": {"pixel_um": cam.pixel_um, "bit_depth": cam.bit_depth,
                       "black_level_adu": cam.black_level_adu, "full_well_e": cam.full_well_e},
            "color_channels": list(m.channels),
            "wavelengths_nm": list(m.wavelengths_nm),
            **({"stain": self.config.stain_style} if kind != "unstained" else {}),
        }

    def _stack_meta(self, index: int) -> dict[str, Any]:
        meta = self._image_meta(index, "unstained", self.microscope)
        planes = []
        for i, (ch, exp) in enumerate(zip(self.recipe.channels, self.exposures, strict=True)):
            led = None if ch.led is None else self.geometry.leds[ch.led]
            planes.append({
                "plane": i, "channel": ch.name, "led": ch.led, "exposure_class": ch.exposure,
                "exposure_ms": round(exp.exposure_ms, 6), "gain": round(exp.gain, 6),
                "leds_lit": list(self.geometry.brightfield_indices) if led is None else [ch.led],
                "na_x": None if led is None else led.na_x, "na_y": None if led is None else led.na_y,
            })
        meta.update(recipe=self.recipe.to_dict(), geometry=self.geometry.to_dict(), planes=planes)
        return meta


def hr_microscope(geometry: ArrayGeometry) -> Microscope:
    """The 100x / 1.25 NA oil-immersion microscope of the high-resolution truth."""
    return Microscope(geometry, MicroscopeConfig(oversample=1, medium_n=OIL_N), objective=HR_OBJECTIVE)


def render_hr_tile(m: Microscope, smear: Smear, center_um: tuple[float, float], tile_px: int,
                   rng: np.random.Generator) -> NDArray[np.uint16]:
    """A ``tile_px`` square 100x image ``(C, n, n)`` (raw ADU) of ``smear`` centred on ``center_um``,
    through the oil objective and a :data:`HR_CONDENSER_NA` condenser (guard band cropped)."""
    g = 2 * GUARD_PX
    x0, y0 = (c - (tile_px / 2 + g) * m.pixel_um for c in center_um)
    maps = rasterize(smear, m.fine_pixel_um, (tile_px + 2 * g,) * 2, transform=Affine(shift_um=(-x0, -y0)))
    return m.prepare(maps).render_brightfield_rgb(rng, condenser_na(HR_CONDENSER_NA))[:, g:-g, g:-g]


@lru_cache(maxsize=16)
def calibrated_exposures(profile: str, recipe: str) -> tuple[Exposure, ...]:
    """The per-channel camera settings of a (profile, recipe): chosen once on a reference field
    rich in white cells, then fixed for every field (as a device's calibration table is)."""
    geometry = get_profile(profile)
    microscope = Microscope(geometry)
    ref_cfg = SmearConfig.from_dict({"wbc_per_mm2": 2000.0})
    size = 256
    smear = make_smear((size * microscope.pixel_um,) * 2, 12345, ref_cfg)
    maps = rasterize(smear, microscope.fine_pixel_um, microscope.fine_shape((size, size)))
    return microscope.calibrate(microscope.prepare(maps), resolve_recipe(recipe, geometry))


def scan(config: ScanConfig, out: Path, progress: Callable[[int, int], None] | None = None) -> list[Path]:
    """Simulate ``config.fields`` fields into ``out``; fields already complete are kept (resume)."""
    rawscan.prepare_output(out, config.to_dict())
    sim = Simulator(config)
    written = []
    for i in range(config.fields):
        target = rawscan.field_dir(out, i)
        if rawscan.is_complete(target):
            log.info("field %d already complete, skipped", i)
        else:
            rawscan.write_field(out, sim.simulate_field(i))
        written.append(target)
        if progress:
            progress(i + 1, config.fields)
    return written
