"""How much would a real LED's bandwidth and size change the simulator's single-LED images?

    python docs/results/led_extent.py [--recipe le8] [--band-nm 20] [--die-mm 0.3] [--json]

The simulator lights the sample with monochromatic point sources (:mod:`sim.optics`). A real LED
emits a band of wavelengths (Gaussian, ``--band-nm`` FWHM) from a die of finite size (a square of
``--die-mm`` at the LED's distance). Both average the coherent image over nearby wavelengths and
illumination angles. This script renders one dense simulated field under every LED of a recipe
three ways — point source, band (7 wavelengths), die (5x5 points) — and reports the rms change of
each against the rms contrast of the point-source images themselves, per colour channel.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from firmware_bridge.recipes import resolve_recipe
from firmware_bridge.rigs import get_profile
from sim.maps import SampleMaps
from sim.microscope import Microscope
from sim.optics import led_intensities, object_spectrum
from sim.rasterize import Affine, rasterize
from sim.sample import SmearConfig, make_smear
from sim.scan import GUARD_PX


def _images(m: Microscope, maps: SampleMaps, wavelength_nm: float, na: NDArray[np.float64]) -> NDArray[np.float32]:
    spectrum = object_spectrum(maps.transmission(wavelength_nm, m.config.medium_n))
    out = led_intensities(spectrum, m.fine_pixel_um, m.config.oversample, wavelength_nm, na, m.objective)
    return out[:, GUARD_PX:-GUARD_PX, GUARD_PX:-GUARD_PX]


def band_average(m: Microscope, maps: SampleMaps, wavelength_nm: float, na: NDArray[np.float64],
                 fwhm_nm: float, samples: int = 7) -> NDArray[np.float32]:
    """Images under a Gaussian band of ``fwhm_nm`` around ``wavelength_nm`` (``samples`` over ±0.75 FWHM)."""
    if fwhm_nm <= 0:
        return _images(m, maps, wavelength_nm, na)
    offsets = np.linspace(-0.75, 0.75, samples) * fwhm_nm
    weights = np.exp(-0.5 * (offsets / (fwhm_nm / 2.355)) ** 2)
    weights /= weights.sum()
    return np.sum([w * _images(m, maps, wavelength_nm + o, na) for o, w in zip(offsets, weights, strict=True)],
                  axis=0)


def die_average(m: Microscope, maps: SampleMaps, wavelength_nm: float, na: NDArray[np.float64],
                distance_mm: NDArray[np.float64], die_mm: float, samples: int = 5) -> NDArray[np.float32]:
    """Images under square dies of side ``die_mm`` (``samples`` x ``samples`` points each)."""
    grid = np.linspace(-die_mm / 2, die_mm / 2, samples)
    shifts = [np.c_[dx / distance_mm, dy / distance_mm] for dx in grid for dy in grid]
    return np.mean([_images(m, maps, wavelength_nm, na + s) for s in shifts], axis=0)


def measure(recipe: str = "le8", band_nm: float = 20.0, die_mm: float = 0.3, field_px: int = 128,
            seed: int = 5, profile: str = "thesis-43") -> list[dict[str, Any]]:
    """Per colour channel: rms contrast of the point-source images, rms change by the band and by the die."""
    geometry = get_profile(profile)
    m = Microscope(geometry)
    leds: Sequence[int] = [c.led for c in resolve_recipe(recipe, geometry).channels if c.led is not None]
    smear = make_smear((field_px * m.pixel_um,) * 2, seed, SmearConfig.from_dict({"wbc_per_mm2": 3000.0}))
    shape = m.fine_shape((field_px + 2 * GUARD_PX,) * 2)
    maps = rasterize(smear, m.fine_pixel_um, shape, transform=Affine(shift_um=(GUARD_PX * m.pixel_um,) * 2))
    na = np.array([(geometry.led(i).na_x, geometry.led(i).na_y) for i in leds])
    distance = np.array([geometry.led(i).distance_mm for i in leds])

    def rms(a: NDArray[np.float32]) -> float:
        return float(np.sqrt(np.mean(np.square(a, dtype=np.float64))))

    rows = []
    for channel, wl in zip(m.channels, m.wavelengths_nm, strict=True):
        point = _images(m, maps, wl, na)
        contrast = rms(point - point.mean(axis=(1, 2), keepdims=True))
        band = rms(band_average(m, maps, wl, na, band_nm) - point)
        die = rms(die_average(m, maps, wl, na, distance, die_mm) - point)
        rows.append({"channel": channel, "wavelength_nm": wl, "contrast_rms": contrast, "band_rms": band,
                     "die_rms": die, "band_fraction": band / contrast, "die_fraction": die / contrast})
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--recipe", default="le8")
    p.add_argument("--band-nm", type=float, default=20.0, help="LED emission band, FWHM (nm)")
    p.add_argument("--die-mm", type=float, default=0.3, help="LED die side (mm)")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    rows = measure(args.recipe, args.band_nm, args.die_mm)
    if args.json:
        print(json.dumps({"recipe": args.recipe, "band_nm": args.band_nm, "die_mm": args.die_mm, "rows": rows}))
        return 0
    print(f"{'channel':7s} {'nm':>5s} {'contrast':>9s} {'band':>7s} {'die':>7s}")
    for r in rows:
        print(f"{r['channel']:7s} {r['wavelength_nm']:5.0f} {r['contrast_rms']:9.4f} "
              f"{r['band_fraction']:6.1%} {r['die_fraction']:6.1%}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
