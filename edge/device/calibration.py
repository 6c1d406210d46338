"""Per-LED auto-exposure and flat fields: ``stainless-edge calibrate`` writes them, the daemon loads them.

For every LED of the recipe (every channel except the darkfield ``high`` ones) :func:`search_exposure`
finds the longest *effective exposure* (exposure time × analogue gain) whose frame keeps the
saturated fraction under ``saturation_max`` and whose ``target_percentile`` signal does not pass
``target_fraction`` of the range above black: it brackets by factors of 8 from ``start_exposure_ms``,
then bisects in log space to ``tolerance``. Time comes first; gain only beyond ``max_exposure_ms``
(and only up to ``max_gain``; 1.0 = the camera's gain is not used). A ``high`` channel is its LED's
setting × ``high_factor`` (it is meant to saturate the bright scatterers). Flat fields: the mean of
``flat_frames`` frames per brightfield channel at its calibrated setting (their per-pixel median,
smoothed over ``flat_smooth_px``: the flat field is the illumination's slow fall-off, not the
specimen), as a gain map ``mean / smoothed`` ``(C, H, W)`` (darkfield images of a blank
slide are black: they get none).

The file (:func:`write_calibration`) is JSON (format ``stainless-calibration``, version 1)::

    {"format": "stainless-calibration", "version": 1, "created": "2026-...Z",
     "recipe": {"id": "full-nohe", "hash": "..."}, "camera": {"url": ..., "max_adu": ..., "black_level": ...},
     "settings": {<[calibration] keys used>},
     "channels": {"bf": {"exposure_ms": 0.11, "gain": 1.0, "level": 0.69, "saturated_fraction": 0.0,
                         "status": "ok"}, ...},
     "flat_field": "calibration.flat.npz"}

``status``: ``ok`` (bounded by the target or saturation), ``underexposed`` (the longest setting
allowed is below target), ``saturated`` (the shortest is over the saturation bound), ``derived``
(a ``high`` channel). ``flat_field`` names an ``.npz`` beside the JSON (one float32 ``(C, H, W)``
gain map per channel name) or is ``""``.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import logging
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, cast

import cv2
import numpy as np
from numpy.typing import NDArray

from core.camera import Exposure
from core.config import ConfigError
from edge.device.cameras import Camera
from edge.device.config import CalibrationConfig
from edge.device.stack import FieldRequest, PlaneInfo, plane_layout
from firmware_bridge.client import LedArray
from firmware_bridge.recipes import StackRecipe

log = logging.getLogger(__name__)

FORMAT = "stainless-calibration"
VERSION = 1
STATUSES = ("ok", "underexposed", "saturated", "derived")


@dataclass(frozen=True)
class Measurement:
    """One frame's figures: ``level`` the target percentile above black as a fraction of the range,
    ``saturated_fraction`` the share of pixels with any colour at the ADC's top."""

    level: float
    saturated_fraction: float


@dataclass(frozen=True)
class ChannelCalibration:
    exposure: Exposure
    level: float
    saturated_fraction: float
    status: str

    def to_dict(self) -> dict[str, Any]:
        return {"exposure_ms": self.exposure.exposure_ms, "gain": self.exposure.gain, "level": self.level,
                "saturated_fraction": self.saturated_fraction, "status": self.status}


@dataclass(frozen=True)
class Calibration:
    """A calibration file's content; ``id`` is the first 12 hex of the JSON's SHA-256 (in headers)."""

    recipe_id: str
    recipe_hash: str
    channels: dict[str, ChannelCalibration]
    flat_field: dict[str, NDArray[np.float32]] = field(default_factory=dict)
    camera: dict[str, Any] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    created: str = ""
    id: str = ""

    def exposures(self) -> dict[str, Exposure]:
        return {name: c.exposure for name, c in self.channels.items()}

    def summary(self) -> dict[str, Any]:
        """What ``status`` and the CLI show: id, recipe, and the per-channel settings."""
        return {"id": self.id, "created": self.created, "recipe": self.recipe_id,
                "flat_field": sorted(self.flat_field), "channels": {n: c.to_dict() for n, c in self.channels.items()}}


# -- functional core ----------------------------------------------------------------------------
def measure(frame: NDArray[np.uint16], black: float, max_adu: int, percentile: float) -> Measurement:
    """Figures of one ``(C, H, W)`` frame: the ``percentile`` of the brightest colour per pixel."""
    top = frame.max(axis=0).astype(np.float32)
    level = (float(np.percentile(top, percentile)) - black) / (max_adu - black)
    return Measurement(max(level, 0.0), float(np.mean(top >= max_adu)))


def split_effective(effective_ms: float, config: CalibrationConfig) -> Exposure:
    """Exposure time up to ``max_exposure_ms``, the rest as gain (at most ``max_gain``)."""
    if effective_ms <= config.max_exposure_ms:
        return Exposure(effective_ms, 1.0)
    return Exposure(config.max_exposure_ms, min(effective_ms / config.max_exposure_ms, config.max_gain))


def search_exposure(measure_at: Callable[[Exposure], Measurement], config: CalibrationConfig) -> ChannelCalibration:
    """The longest effective exposure under the saturation bound and not past the target (module doc)."""
    lo_e, hi_e = config.min_exposure_ms, config.max_exposure_ms * config.max_gain

    def over(m: Measurement) -> bool:
        return m.saturated_fraction > config.saturation_max or m.level >= config.target_fraction

    under: tuple[float, Measurement] | None = None
    over_e: float | None = None
    e = min(max(config.start_exposure_ms, lo_e), hi_e)
    for _ in range(64):  # bracket: at most log8(hi/lo) steps
        m = measure_at(split_effective(e, config))
        if over(m):
            over_e = e
            if under is not None or e <= lo_e:
                break
            e = max(e / 8, lo_e)
        else:
            under = (e, m)
            if over_e is not None or e >= hi_e:
                break
            e = min(e * 8, hi_e)
    if under is None:  # even the shortest allowed exposure is over
        m = measure_at(split_effective(lo_e, config))
        return ChannelCalibration(split_effective(lo_e, config), m.level, m.saturated_fraction,
                                  "saturated" if m.saturated_fraction > config.saturation_max else "ok")
    if over_e is None:  # the longest allowed is still below target
        return ChannelCalibration(split_effective(under[0], config), under[1].level, under[1].saturated_fraction,
                                  "underexposed")
    while over_e / under[0] > 1 + config.tolerance:
        mid = math.sqrt(under[0] * over_e)
        m = measure_at(split_effective(mid, config))
        if over(m):
            over_e = mid
        else:
            under = (mid, m)
    return ChannelCalibration(split_effective(under[0], config), under[1].level, under[1].saturated_fraction, "ok")


def flat_gain(frames: list[NDArray[np.uint16]], black: float, smooth_px: int) -> NDArray[np.float32]:
    """Gain map ``(C, H, W)`` from frames of an even field: the per-pixel median over frames (cells that
    pass through one frame drop out), smoothed; per colour ``mean / smoothed``."""
    mean = np.median([f.astype(np.float32) - np.float32(black) for f in frames], axis=0)
    out = np.empty_like(mean)
    for c in range(mean.shape[0]):
        smooth = cv2.blur(mean[c], (smooth_px, smooth_px), borderType=cv2.BORDER_REFLECT)
        out[c] = np.float32(max(float(smooth.mean()), 1e-6)) / np.maximum(smooth, 1e-6)
    return np.clip(out, 0.25, 4.0).astype(np.float32)


# -- capture (thin IO) ----------------------------------------------------------------------------
def calibrate(led: LedArray, camera: Camera, recipe: StackRecipe, config: CalibrationConfig,
              timeout_s: float = 2.0, position: FieldRequest | None = None) -> Calibration:
    """Calibrate every LED of ``recipe`` at ``position`` (the current field by default), then flat fields."""
    request = position or FieldRequest("calibration", 0, (0.0, 0.0))
    planes = plane_layout(recipe, {c.name: Exposure(config.start_exposure_ms) for c in recipe.channels})
    colours = len(led.geometry().wavelengths_nm)
    if colours > 1:
        led.set_color(255)
    led.set_brightness(255)  # full drive, as acquisition uses
    camera.move_to(request)
    channels: dict[str, ChannelCalibration] = {}
    names = {p.name for p in planes}
    derived = [p for p in planes if p.exposure_class == "high" and p.name.replace(":high", ":low") in names]
    try:
        for p in planes:
            if p in derived:
                continue
            led.light(p.leds)
            channels[p.name] = search_exposure(partial(_grab_measure, camera, p, config=config, timeout_s=timeout_s),
                                               config)
            c = channels[p.name]
            log.info("%s: %.4g ms x %.3g gain, level %.3f, saturated %.4f, %s", p.name, c.exposure.exposure_ms,
                     c.exposure.gain, c.level, c.saturated_fraction, c.status)
        for p in derived:
            low = channels[p.name.replace(":high", ":low")].exposure
            e = split_effective(low.effective_ms * config.high_factor, config)
            led.light(p.leds)
            m = _grab_measure(camera, p, e, config=config, timeout_s=timeout_s)
            channels[p.name] = ChannelCalibration(e, m.level, m.saturated_fraction, "derived")
        flats = _flat_fields(led, camera, [p for p in planes if not p.darkfield], channels, config, request, timeout_s)
    finally:
        led.clear()
    ordered = {c.name: channels[c.name] for c in recipe.channels}
    cam = {"url": camera.url, "max_adu": camera.max_adu, "black_level": camera.black_level,
           "colours": list(camera.colours)}
    return Calibration(recipe.id, recipe.hash, ordered, flats, cam, asdict(config),
                       datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"))


def _grab_measure(camera: Camera, plane: PlaneInfo, exposure: Exposure, *, config: CalibrationConfig,
                  timeout_s: float) -> Measurement:
    frame = camera.grab(_with_exposure(plane, exposure), timeout_s)
    return measure(frame, camera.black_level, camera.max_adu, config.target_percentile)


def _with_exposure(plane: PlaneInfo, exposure: Exposure) -> PlaneInfo:
    return PlaneInfo(plane.name, plane.leds, plane.darkfield, plane.angle_deg, plane.exposure_class, exposure)


def _flat_fields(led: LedArray, camera: Camera, planes: list[PlaneInfo], channels: dict[str, ChannelCalibration],
                 config: CalibrationConfig, request: FieldRequest,
                 timeout_s: float) -> dict[str, NDArray[np.float32]]:
    """One gain map per brightfield plane: frames at ``flat_frames`` consecutive field ids (the
    virtual bench images a new field for each; a real rig's camera stays on its blank region)."""
    if config.flat_frames == 0:
        return {}
    frames: dict[str, list[NDArray[np.uint16]]] = {p.name: [] for p in planes}
    for k in range(config.flat_frames):
        camera.move_to(FieldRequest(request.slide_id, request.field_id + k, request.stage_um))
        for p in planes:
            led.light(p.leds)
            frames[p.name].append(camera.grab(_with_exposure(p, channels[p.name].exposure), timeout_s))
    camera.move_to(request)
    return {name: flat_gain(f, camera.black_level, config.flat_smooth_px) for name, f in frames.items()}


# -- the file ----------------------------------------------------------------------------------
def write_calibration(cal: Calibration, path: Path | str) -> Path:
    """Write ``cal`` as ``path`` (JSON) and, with flat fields, ``<stem>.flat.npz`` beside it; returns ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    flat_name = f"{path.stem}.flat.npz" if cal.flat_field else ""
    if flat_name:
        tmp = path.with_name(flat_name + ".tmp.npz")
        np.savez(tmp, **cast(dict[str, Any], cal.flat_field))
        tmp.replace(path.with_name(flat_name))
    doc = {"format": FORMAT, "version": VERSION, "created": cal.created,
           "recipe": {"id": cal.recipe_id, "hash": cal.recipe_hash}, "camera": cal.camera, "settings": cal.settings,
           "channels": {n: c.to_dict() for n, c in cal.channels.items()}, "flat_field": flat_name}
    tmp_json = path.with_name(path.name + ".tmp")
    tmp_json.write_text(json.dumps(doc, indent=1) + "\n")
    tmp_json.replace(path)
    return path


def load_calibration(path: Path | str, recipe: StackRecipe | None = None) -> Calibration:
    """Read and check a calibration file; with ``recipe``, it must cover that recipe (same hash)."""
    path = Path(path)
    fix = "run `stainless-edge calibrate --config CONFIG` to write a new one"
    try:
        raw = path.read_bytes()
        doc = json.loads(raw)
    except OSError as exc:
        raise ConfigError(f"calibration file {path}: cannot read it ({exc.strerror}); {fix}") from exc
    except ValueError as exc:
        raise ConfigError(f"calibration file {path}: expected JSON, found invalid JSON ({exc}); {fix}") from exc
    if not isinstance(doc, dict) or doc.get("format") != FORMAT or doc.get("version") != VERSION:
        found = (doc.get("format"), doc.get("version")) if isinstance(doc, dict) else type(doc).__name__
        raise ConfigError(f"calibration file {path}: expected format {FORMAT!r} version {VERSION}, found {found!r}; "
                          f"{fix}")
    try:
        channels = {str(n): _channel(n, c) for n, c in doc["channels"].items()}
        rec = doc["recipe"]
        cal = Calibration(str(rec["id"]), str(rec["hash"]), channels, {}, dict(doc.get("camera", {})),
                          dict(doc.get("settings", {})), str(doc.get("created", "")),
                          hashlib.sha256(raw).hexdigest()[:12])
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        raise ConfigError(f"calibration file {path}: {exc}; expected the keys recipe.id, recipe.hash and channels."
                          f"<name>.exposure_ms / gain (see edge/device/calibration.py); {fix}") from exc
    if recipe is not None:
        _check_recipe(cal, recipe, path, fix)
    flat = doc.get("flat_field") or ""
    if flat:
        cal = Calibration(cal.recipe_id, cal.recipe_hash, cal.channels, _load_flat(path.parent / str(flat), cal, path),
                          cal.camera, cal.settings, cal.created, cal.id)
    return cal


def _channel(name: str, c: Any) -> ChannelCalibration:
    e, g = float(c["exposure_ms"]), float(c.get("gain", 1.0))
    if not (math.isfinite(e) and e > 0 and math.isfinite(g) and g >= 1.0):
        raise ValueError(f"channel {name!r}: expected exposure_ms > 0 and gain >= 1, found {e!r} / {g!r}")
    status = str(c.get("status", "ok"))
    if status not in STATUSES:
        raise ValueError(f"channel {name!r}: expected status in {list(STATUSES)}, found {status!r}")
    return ChannelCalibration(Exposure(e, g), float(c.get("level", math.nan)),
                              float(c.get("saturated_fraction", math.nan)), status)


def _check_recipe(cal: Calibration, recipe: StackRecipe, path: Path, fix: str) -> None:
    if cal.recipe_hash != recipe.hash:
        raise ConfigError(f"calibration file {path}: made for recipe {cal.recipe_id!r} (hash {cal.recipe_hash}), "
                          f"but the model's recipe is {recipe.id!r} (hash {recipe.hash}); {fix}")
    missing = [c.name for c in recipe.channels if c.name not in cal.channels]
    if missing:
        raise ConfigError(f"calibration file {path}: expected every channel of recipe {recipe.id!r}, found none for "
                          f"{missing[:5]}; {fix}")


def _load_flat(flat: Path, cal: Calibration, path: Path) -> dict[str, NDArray[np.float32]]:
    try:
        with np.load(flat, allow_pickle=False) as z:
            maps = {k: np.asarray(z[k], np.float32) for k in z.files}
    except (OSError, ValueError) as exc:
        raise ConfigError(f"calibration file {path}: its flat field {flat} is unreadable ({exc}); "
                          "expected an .npz of (C, H, W) gain maps beside it") from exc
    shapes = {m.shape for m in maps.values()}
    bad = [k for k, m in maps.items() if k not in cal.channels or m.ndim != 3 or not np.isfinite(m).all()
           or (m <= 0).any()]
    if bad or len(shapes) > 1:
        raise ConfigError(f"flat field {flat}: expected one finite, positive (C, H, W) gain map per channel of the "
                          f"calibration, all of one shape; found bad maps {bad[:5]} and shapes {sorted(shapes)}")
    return maps
