"""Synthetic datasets: cells rendered straight from ``sim/`` into the dataset store.

The faithful path goes through raw scans (``build.py``): misregistration, detection and
alignment included. This path is the fast one for training at scale: small windows rich in white
cells are rendered unstained (the recipe's PLS stack) and stained with *perfect* registration,
and a crop around every white cell that lies fully inside becomes a sample (position and type
from the simulator, no detection involved). With ``hr`` every sample also gets the seed's 100x
target: the stained crop imaged through the 100x / 1.25 oil objective, box-filtered onto the 20x
grid (what ``hr.py`` does with a registered 100x tile, here without registration error). With
``focus_sd_um`` each window's unstained scan is out of focus by its own normal draw (a scan
without per-field autofocus); the stained scans stay in focus.

:func:`render_stained_field` is also what the tests and the accuracy script use to make stained
images with known white cells cheaply (no PLS stack).
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from core.config import ConfigError, check
from firmware_bridge.recipes import resolve_recipe
from firmware_bridge.rigs import get_profile
from sim.microscope import Microscope
from sim.rasterize import Affine, rasterize
from sim.sample import Smear, SmearConfig, make_smear, smudge_truth, wbc_truth
from sim.scan import GUARD_PX, calibrated_exposures, hr_microscope, render_hr_tile
from sim.stain import stain_smear
from trainer.data.splits import split_of
from trainer.data.store import SPLITS, DatasetWriter, StoreInfo

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SyntheticConfig:
    """What :func:`build_synthetic` renders."""

    windows: int = 8  # rendered windows ("fields"); each holds a few white cells
    window_px: int = 160
    crop_px: int = 64
    seed: int = 0
    profile: str = "thesis-43"
    recipe: str = "full"
    stain_style: str = "mgg"
    lab_variation: float = 0.15
    wbc_per_mm2: float = 1500.0
    windows_per_slide: int = 4  # consecutive windows share a "slide" id (and so a split)
    hr: bool = False  # also render 100x targets (targets_hr)
    focus_sd_um: float = 0.0  # per-window focus error of the unstained scan (normal σ, µm); targets stay in focus
    smear: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check("synthetic", self, windows=(self.windows >= 1, ">= 1"),
              crop_px=(self.crop_px >= 16 and self.crop_px % 2 == 0, "an even number >= 16"),
              window_px=(self.window_px >= self.crop_px, ">= crop_px"),
              lab_variation=(0 <= self.lab_variation <= 1, "0 .. 1"),
              wbc_per_mm2=(0 < self.wbc_per_mm2 <= 3000, "in (0, 3000]"),
              windows_per_slide=(self.windows_per_slide >= 1, ">= 1"),
              focus_sd_um=(0 <= self.focus_sd_um <= 10, "0 .. 10 µm"))


def _render(m: Microscope, smear: Smear, size_px: int, fn: Callable[[Any], NDArray[np.uint16]]) -> NDArray[np.uint16]:
    pad = GUARD_PX * m.pixel_um
    shape = m.fine_shape((size_px + 2 * GUARD_PX,) * 2)
    maps = rasterize(smear, m.fine_pixel_um, shape, transform=Affine(shift_um=(pad, pad)))
    out = fn(m.prepare(maps))
    return out[..., GUARD_PX:GUARD_PX + size_px, GUARD_PX:GUARD_PX + size_px]


def render_stained_field(size_px: int, seed: int, style: str = "mgg", lab_variation: float = 0.15,
                         smear: dict[str, Any] | None = None, profile: str = "thesis-43",
                         precipitate_per_mm2: float = 200.0) -> tuple[NDArray[np.uint16], list[dict[str, Any]]]:
    """A stained brightfield frame ``(3, size, size)`` uint16 (raw ADU, black level 16) and its
    white cells, also those of the margin (``wbc_truth`` entries plus ``center_px`` [x, y] on this
    frame and ``inside``: the whole cell lies on the frame, so a finder must find it; cells cut by
    the edge may be found but need not be). Smudge cells (crushed white cells) follow with
    ``type`` "smudge" and ``inside`` False: finding one is neither a hit nor a false alarm."""
    m = Microscope(get_profile(profile))
    sm = make_smear((size_px * m.pixel_um,) * 2, seed, SmearConfig.from_dict(smear or {}))
    stained = stain_smear(sm, seed, style, lab_variation, precipitate_per_mm2=precipitate_per_mm2)
    rng = np.random.default_rng(seed)
    rgb = _render(m, stained, size_px, lambda f: f.render_brightfield_rgb(rng))
    size_um = size_px * m.pixel_um

    def px(xy: list[float]) -> list[float]:
        return [xy[0] / m.pixel_um - 0.5, xy[1] / m.pixel_um - 0.5]

    cells = [dict(w, center_px=px(w["center_um"]),
                  inside=all(w["radius_um"] <= c <= size_um - w["radius_um"] for c in w["center_um"]))
             for w in wbc_truth(sm)]
    cells += [dict(w, type="smudge", center_px=px(w["center_um"]), inside=False) for w in smudge_truth(sm)]
    return np.ascontiguousarray(rgb), cells


def _window(cfg: SyntheticConfig, index: int, m: Microscope) -> dict[str, Any]:
    """Render window ``index``: stack ``(N, C, W, W)``, stained ``(C, W, W)``, its white cells, and
    the stained smear with a noise generator for the 100x targets."""
    seeds = [int(s.generate_state(1)[0]) for s in np.random.SeedSequence([cfg.seed, index]).spawn(5)]
    size_um = cfg.window_px * m.pixel_um
    sm = make_smear((size_um, size_um), seeds[0], SmearConfig.from_dict({"wbc_per_mm2": cfg.wbc_per_mm2,
                                                                         "margin_um": 8.0, **cfg.smear}))
    recipe = resolve_recipe(cfg.recipe, m.geometry)
    exposures = calibrated_exposures(cfg.profile, cfg.recipe)
    rng = np.random.default_rng(seeds[1])
    defocus_um = float(np.random.default_rng(seeds[4]).normal(0.0, cfg.focus_sd_um)) if cfg.focus_sd_um else 0.0
    scope = Microscope(m.geometry, dataclasses.replace(m.config, defocus_um=defocus_um)) if defocus_um else m
    stack = _render(scope, sm, cfg.window_px, lambda f: f.render_stack(recipe, exposures, rng))
    stained_smear = stain_smear(sm, seeds[2], cfg.stain_style, cfg.lab_variation)
    stained = _render(m, stained_smear, cfg.window_px, lambda f: f.render_brightfield_rgb(rng))
    return {"stack": stack, "stained": stained, "cells": wbc_truth(sm), "stained_smear": stained_smear,
            "hr_rng": np.random.default_rng(seeds[3])}


def _hr_target(hm: Microscope, smear: Smear, center_um: tuple[float, float], crop_px: int, ratio: int,
               rng: np.random.Generator) -> NDArray[np.uint16]:
    """The 100x image of a crop centred on ``center_um``, box-filtered by ``ratio`` to ``crop_px``."""
    tile = render_hr_tile(hm, smear, center_um, crop_px * ratio, rng).astype(np.float32)
    c = tile.shape[0]
    binned = tile.reshape(c, crop_px, ratio, crop_px, ratio).mean(axis=(2, 4))
    return np.rint(binned).astype(np.uint16)


def build_synthetic(cfg: SyntheticConfig, out: Path, progress: Callable[[int, int], None] | None = None,
                    ratios: tuple[float, float, float] = (8.0, 1.0, 1.0)) -> dict[str, Any]:
    """Render ``cfg.windows`` windows into the store at ``out`` (resumable); returns counts."""
    geometry = get_profile(cfg.profile)
    m = Microscope(geometry)
    recipe = resolve_recipe(cfg.recipe, geometry)
    cam = m.config.camera
    info = StoreInfo(recipe, cfg.crop_px, cam.bit_depth, cam.black_level_adu, cam.bit_depth, cam.black_level_adu,
                     m.pixel_um, cfg.hr, "synthetic")
    hm = hr_microscope(geometry)
    ratio = round(m.pixel_um / hm.pixel_um)
    if cfg.hr and abs(ratio * hm.pixel_um - m.pixel_um) > 1e-6 * m.pixel_um:
        raise ConfigError(f"synthetic: --hr needs a whole-number pixel ratio between the 100x and the "
                          f"{geometry.objective_magnification:g}x images, got {m.pixel_um / hm.pixel_um:.4f}")
    writer = DatasetWriter(out, info, {"synthetic": dataclasses.asdict(cfg)})
    half, kept, skipped = cfg.crop_px // 2, 0, 0
    for i in range(cfg.windows):
        key = f"synthetic-{cfg.seed}/window_{i:05d}"
        if key in writer.done:
            skipped += 1
            continue
        win = _window(cfg, i, m)
        slide = f"synthetic-{cfg.seed}-{i // cfg.windows_per_slide}"
        inputs: list[NDArray[np.uint16]] = []
        targets: list[NDArray[np.uint16]] = []
        targets_hr: list[NDArray[np.uint16]] = []
        meta: dict[str, list[Any]] = {k: [] for k in ("sample_id", "slide", "field", "x_um", "y_um", "split",
                                                          "cell_type", "registration_score", "alignment_score",
                                                          "pls_misalignment_px", "qc_flags")}
        for cell in win["cells"]:
            cx, cy = (math.floor(c / m.pixel_um) for c in cell["center_um"])
            if not (half <= cx <= cfg.window_px - half and half <= cy <= cfg.window_px - half):
                continue
            win_sl = (..., slice(cy - half, cy + half), slice(cx - half, cx + half))
            inputs.append(win["stack"][win_sl])
            targets.append(win["stained"][win_sl])
            if cfg.hr:
                targets_hr.append(_hr_target(hm, win["stained_smear"], (cx * m.pixel_um, cy * m.pixel_um),
                                             cfg.crop_px, ratio, win["hr_rng"]))
            for k, v in (("sample_id", f"{slide}/{i}/{cell['id']}"), ("slide", slide), ("field", i),
                         ("x_um", cell["center_um"][0]), ("y_um", cell["center_um"][1]),
                         ("split", SPLITS[split_of(slide, ratios)]), ("cell_type", cell["type"]),
                         ("registration_score", 1.0), ("alignment_score", 1.0), ("pls_misalignment_px", 0.0),
                         ("qc_flags", 0)):
                meta[k].append(v)
        n = len(inputs)
        shape = (0, len(recipe), len(m.channels), cfg.crop_px, cfg.crop_px)
        no_target = np.zeros((0, *shape[2:]), np.uint16)
        hr = (np.stack(targets_hr) if n else no_target) if cfg.hr else None
        writer.append(np.stack(inputs) if n else np.zeros(shape, np.uint16),
                      np.stack(targets) if n else no_target, dict(meta), targets_hr=hr, done_key=key)
        kept += n
        if progress:
            progress(i + 1, cfg.windows)
    return {"windows": cfg.windows, "windows_skipped": skipped, "samples": kept}
