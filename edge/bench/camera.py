"""The virtual bench camera: renders what the emulated LED array lights, for the field under the objective.

Each field is prepared once (:meth:`sim.microscope.Microscope.prepare`, one FFT per wavelength) and
the single-LED intensities are cached as they are first needed, so a 44-image stack costs one
pupil-filtered inverse FFT per LED, not one per image. At grab time the camera reads
``Emulator.illumination()`` — the LEDs actually lit and their brightness — so a wrong or missing
LED command shows in the picture, exactly as it would on the microscope.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from core.camera import Exposure
from edge.device.config import VirtualBenchConfig
from edge.device.errors import CameraError, CameraTimeout
from edge.device.stack import FieldRequest, PlaneInfo
from firmware_bridge.emulator import Emulator, Illumination
from sim.camera import expose
from sim.scan import GUARD_PX, ScanConfig, Simulator, calibrated_exposures

log = logging.getLogger(__name__)


class SimCamera:
    """A :class:`~edge.device.cameras.Camera` imaging simulated smear fields through an emulated LED array.

    Fault injection for tests: ``fault_timeouts`` (the next n grabs/collects raise
    :class:`CameraTimeout`).
    """

    def __init__(self, emulator: Emulator, bench: VirtualBenchConfig, *, black_level: float = 16.0) -> None:
        self.url = "sim://"
        self.emulator = emulator
        self.bench = bench
        w, h = bench.field_size_px
        self.sim = Simulator(ScanConfig(
            profile=emulator.geometry.name, recipe="brightfield", fields=bench.fields, seed=bench.seed,
            field_size_px=(w, h), pls_misalignment_rate=bench.pls_misalignment_rate,
            smear={"wbc_per_mm2": bench.wbc_per_mm2}))
        m = self.sim.microscope
        self.colours = m.channels
        self.pixel_um = m.pixel_um
        self.max_adu = m.config.camera.max_adu
        self.black_level = float(m.config.camera.black_level_adu)
        if abs(self.black_level - black_level) > 0.5:
            log.warning("camera.black_level_adu = %s but the virtual camera's black level is %s; using %s",
                        black_level, self.black_level, self.black_level)
        self.fault_timeouts = 0
        self._field: int | None = None
        self._prepared: object | None = None
        self._cache: dict[int, NDArray[np.float32]] = {}
        self._frames = 0
        self._armed: list[PlaneInfo] = []
        self._snaps: list[Illumination] = []
        self._cond = threading.Condition()

    # -- protocol ----------------------------------------------------------------------------
    def calibration(self, recipe_id: str) -> dict[str, Exposure]:
        from firmware_bridge.recipes import resolve_recipe

        recipe = resolve_recipe(recipe_id, self.emulator.geometry)
        table = calibrated_exposures(self.emulator.geometry.name, recipe_id)
        return {c.name: Exposure(e.exposure_ms, e.gain) for c, e in zip(recipe.channels, table, strict=True)}

    def move_to(self, request: FieldRequest) -> None:
        self._frames = 0  # every capture of a field draws the same noise: a retried stack equals a clean one
        if request.field_id == self._field:
            return
        smear = self.sim.smear(request.field_id)  # the field the scan writer would write
        self._prepared = self.sim.microscope.prepare(self.sim.maps(smear))
        self._cache.clear()
        self._field = request.field_id
        self._frames = 0

    def grab(self, plane: PlaneInfo, timeout_s: float) -> NDArray[np.uint16]:
        self._check_fault(timeout_s)
        return self._render(self.emulator.illumination(), plane.exposure)

    def arm(self, planes: Sequence[PlaneInfo]) -> None:
        with self._cond:
            self._armed = list(planes)
            self._snaps = []
        self.emulator.add_listener(self._on_display)

    def collect(self, timeout_s: float) -> list[NDArray[np.uint16]]:
        try:
            self._check_fault(timeout_s)
            with self._cond:
                got = self._cond.wait_for(lambda: len(self._snaps) >= len(self._armed), timeout_s)
                snaps, planes = list(self._snaps), list(self._armed)
            if not got:
                raise CameraTimeout(f"sim:// camera saw {len(snaps)} of {len(planes)} trigger pulses within "
                                    f"{timeout_s:.3g} s; is trigger output 0 enabled in the sequence?")
        finally:
            self._disarm()
        return [self._render(s, p.exposure) for s, p in zip(snaps, planes, strict=True)]

    def close(self) -> None:
        self._disarm()
        self._prepared = None
        self._cache.clear()

    # -- internals -----------------------------------------------------------------------------
    def _check_fault(self, timeout_s: float) -> None:
        if self.fault_timeouts > 0:
            self.fault_timeouts -= 1
            raise CameraTimeout(f"sim:// camera: no frame within {timeout_s:.3g} s (injected fault)")

    def _on_display(self, illumination: Illumination, triggers: tuple[int, ...]) -> None:
        if 0 not in triggers:
            return
        with self._cond:
            if len(self._snaps) < len(self._armed):
                self._snaps.append(illumination)
                self._cond.notify_all()

    def _disarm(self) -> None:
        with contextlib.suppress(ValueError):
            self.emulator.remove_listener(self._on_display)

    def _render(self, illumination: Illumination, exposure: Exposure) -> NDArray[np.uint16]:
        if self._prepared is None or self._field is None:
            raise CameraError("sim:// camera: no field selected; call move_to() before grabbing")
        m = self.sim.microscope
        h, w = self.bench.field_size_px[1], self.bench.field_size_px[0]
        leds = illumination.leds
        missing = [i for i in leds if i not in self._cache]
        if missing:
            crop = (slice(None), slice(None), slice(GUARD_PX, GUARD_PX + h), slice(GUARD_PX, GUARD_PX + w))
            fresh = self._prepared.intensities(missing)[crop]  # type: ignore[attr-defined]
            self._cache.update({i: np.ascontiguousarray(fresh[k]) for k, i in enumerate(missing)})
        if leds:
            irr = float(sum(m.irradiance[i] for i in leds))
            acc = np.zeros((len(self.colours), h, w), np.float32)
            for i in leds:
                acc += self._cache[i] * np.float32(m.irradiance[i] / irr)
            acc *= np.array([illumination.brightness.get(c, 0.0) for c in self.colours], np.float32)[:, None, None]
        else:
            irr, acc = 1.0, np.zeros((len(self.colours), h, w), np.float32)
        rng = np.random.default_rng([self.bench.seed, self._field, self._frames])
        self._frames += 1
        return expose(acc, irr, exposure, m.config.camera, self.colours, rng)
