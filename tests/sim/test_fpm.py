"""Fourier-ptychographic recovery, pinned on stacks simulated from known sample maps.

A simulated stack of the UConn rig over a mounted, stained smear (weak cells, as the real slide
turned out to be) stands in for a real one: the recovery must give back the cells' absorption,
phase delay and coverage as the maps have them, the defocus with its sign, and notice a camera
that sees the LED grid turned 180°.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from firmware_bridge.rigs import Rig, get_rig
from sim.cli import main
from sim.fpm import (
    RELIABLE_SIGN_MARGIN,
    SPECTRUM_EDGES_NA,
    FpmConfig,
    Recovery,
    band_power,
    explained_bins,
    measure_field,
    pupil,
    recover,
    spectrum_offsets,
    upsampling,
)
from sim.maps import STRUCTURES
from sim.rasterize import rasterize
from sim.realstack import RealStack, write_real_stack
from sim.sample import SmearConfig, make_smear
from sim.stack_measures import NA_BINS
from sim.stack_sim import SimSetup, simulate
from sim.stain import stain_smear

SHAPE = (128, 128)
DEFOCUS_UM = 30.0
MEDIUM_N = 1.5
WAVELENGTH_NM = 630.0


def _rig() -> Rig:
    rig = get_rig("uconn-15x15")
    return dataclasses.replace(rig, geometry=dataclasses.replace(rig.geometry, wavelengths_nm={"r": WAVELENGTH_NM}))


def _setup() -> SimSetup:
    return SimSetup(_rig(), SHAPE, DEFOCUS_UM, SmearConfig(rbc_cover=0.45), 3, MEDIUM_N, "wright-giemsa")


@pytest.fixture(scope="module")
def truth() -> dict[str, Any]:
    """The red cells' mean OD, phase and coverage on the maps the stack is simulated from."""
    s = _setup()
    px = s.rig.sample_pixel_um
    smear = stain_smear(make_smear((SHAPE[1] * px, SHAPE[0] * px), s.seed, s.smear), s.seed, "wright-giemsa")
    maps = rasterize(smear, px / 4, (SHAPE[0] * 4, SHAPE[1] * 4))
    t = maps.transmission(WAVELENGTH_NM, MEDIUM_N)
    rbc = maps.structure == STRUCTURES["rbc"]
    return {"od": -2.0 * math.log10(float(np.abs(t[rbc]).mean())), "phase_rad": float(np.angle(t[rbc]).mean()),
            "coverage": float(rbc.mean()), "band_power": band_power(t, px / 4, WAVELENGTH_NM)}


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    return simulate(_setup())


def _stack(images: np.ndarray) -> RealStack:
    return RealStack(Path("synthetic.mat"), images, WAVELENGTH_NM, DEFOCUS_UM, 0.0, (0.0, 0.0))


@pytest.fixture(scope="module")
def recovered(images: np.ndarray) -> Recovery:
    return recover(_stack(images), _rig(), FpmConfig(iterations=10))


def test_recovery_gives_back_the_cells_phase_absorption_and_coverage(recovered: Recovery,
                                                                    truth: dict[str, float]) -> None:
    m = measure_field(recovered, WAVELENGTH_NM, edge_um=8.0)
    assert m["phase_rad"] == pytest.approx(truth["phase_rad"], rel=0.2)
    assert m["od"] == pytest.approx(truth["od"], abs=0.02)
    assert m["coverage"] == pytest.approx(truth["coverage"], abs=0.08)
    assert m["opd_nm"] == pytest.approx(m["phase_rad"] * WAVELENGTH_NM / (2 * math.pi))


def test_band_power_puts_a_cosine_in_its_band_with_half_its_squared_amplitude() -> None:
    px, lam_nm = 0.5, 630.0
    y, x = np.indices((128, 128), dtype=np.float64)
    f = 16 / (128 * px)  # cycles/µm on the grid: as NA, f·λ = 0.1575 (band 0.1–0.2)
    rel = np.exp(0.2 * np.cos(2 * np.pi * f * x * px) + 1j * 0.5 * np.cos(2 * np.pi * f * y * px))
    bp = band_power(rel, px, lam_nm)
    assert bp["na_edges"][2:4] == [0.1, 0.2]
    assert bp["log_amplitude"][2] == pytest.approx(0.2**2 / 2, rel=1e-6)
    assert bp["phase"][2] == pytest.approx(0.5**2 / 2, rel=1e-6)
    assert sum(bp["log_amplitude"]) == pytest.approx(bp["log_amplitude"][2], rel=1e-6)
    assert sum(bp["phase"]) == pytest.approx(bp["phase"][2], rel=1e-6)


def test_band_power_says_whether_absorption_and_delay_vary_together() -> None:
    """A cell that absorbs where it delays puts log-amplitude and phase on one pattern: correlation −1 in its
    band; absorbing stripes across delaying ones of the same frequency: 0, each with its own power."""
    px, lam_nm = 0.5, 630.0
    y, x = np.indices((128, 128), dtype=np.float64)
    f = 16 / (128 * px)  # as NA, f·λ = 0.1575 (band 0.1–0.2)
    stripes = np.cos(2 * np.pi * f * x * px)
    together = band_power(np.exp(-0.2 * stripes + 1j * 0.5 * stripes), px, lam_nm)
    assert together["correlation"][2] == pytest.approx(-1.0, abs=1e-6)
    apart = band_power(np.exp(0.2 * stripes + 1j * 0.5 * np.cos(2 * np.pi * f * y * px)), px, lam_nm)
    assert apart["correlation"][2] == pytest.approx(0.0, abs=1e-6)
    assert apart["log_amplitude"][2] == pytest.approx(0.2**2 / 2, rel=1e-6)
    assert apart["phase"][2] == pytest.approx(0.5**2 / 2, rel=1e-6)
    rings = band_power(np.exp(-0.2 * stripes + 1j * 0.5 * stripes), px, lam_nm, SPECTRUM_EDGES_NA)
    ring = int(np.argmax(rings["phase"]))
    assert rings["na_edges"][ring] <= f * lam_nm * 1e-3 < rings["na_edges"][ring + 1]
    assert sum(rings["phase"]) == pytest.approx(sum(together["phase"]), rel=1e-6)


def test_recovered_band_power_is_the_maps_where_the_darkfield_looks(recovered: Recovery,
                                                                   truth: dict[str, Any]) -> None:
    """Band by band from NA 0.1 to 0.4 (what the darkfield LEDs see) the recovery's variance of
    log-amplitude and phase is the maps' within about a factor of two (measured: log-amplitude
    0.74, 0.50, 0.99 of the maps', phase 0.91, 0.87, 0.69). Real and simulated stacks are compared
    recovery against recovery, so this bounds how much the recovery itself bends the figure."""
    got = measure_field(recovered, WAVELENGTH_NM, edge_um=8.0)["band_power"]
    want = truth["band_power"]
    for key in ("log_amplitude", "phase"):
        ratios = [g / w for g, w in zip(got[key][2:5], want[key][2:5], strict=True)]
        assert all(1 / 2.2 < r < 2.2 for r in ratios), (key, ratios)


def test_recovery_finds_the_defocus_sign_and_an_unturned_grid(recovered: Recovery) -> None:
    assert recovered.defocus_um == DEFOCUS_UM
    assert recovered.sign_margin > RELIABLE_SIGN_MARGIN
    assert not recovered.grid_turned
    assert recovered.residuals[-1] < recovered.residuals[0]
    assert recovered.pixel_um == pytest.approx(_rig().sample_pixel_um / 3)


def test_a_camera_seeing_the_grid_turned_is_noticed_with_the_same_defocus(images: np.ndarray) -> None:
    turned = np.ascontiguousarray(images[:, ::-1, ::-1])  # the sample turned 180° = the grid turned
    rec = recover(_stack(turned), _rig(), FpmConfig(iterations=6))
    assert rec.grid_turned
    assert rec.defocus_um == DEFOCUS_UM
    assert measure_field(rec, WAVELENGTH_NM, edge_um=8.0)["phase_rad"] > 0


def test_spectrum_offsets_put_the_centre_led_at_the_centre_and_scale_with_na() -> None:
    rig = _rig()
    off = spectrum_offsets(rig, WAVELENGTH_NM, SHAPE)
    assert off[0].tolist() == [0, 0]
    led = rig.geometry.leds[1]
    expect_col = -led.na_x / (WAVELENGTH_NM * 1e-3) * SHAPE[1] * rig.sample_pixel_um
    assert off[1, 1] == round(expect_col)
    up = upsampling(off, SHAPE)
    assert (np.abs(off).max(axis=0) * 2 + SHAPE[0] <= up * SHAPE[0]).all()
    assert not (np.abs(off).max(axis=0) * 2 + SHAPE[0] <= (up - 1) * SHAPE[0]).all()


def test_pupil_is_a_disc_of_the_objective_na_carrying_the_defocus_phase() -> None:
    p = pupil((64, 64), 1.845, 630.0, 0.1, 0.0)
    radius_px = 0.1 / 0.63 * 64 * 1.845
    assert np.count_nonzero(p) == pytest.approx(math.pi * radius_px**2, rel=0.08)
    assert np.allclose(np.abs(p[p != 0]), 1.0)
    q = pupil((64, 64), 1.845, 630.0, 0.1, 40.0)
    assert np.angle(q[32, 40] / q[32, 32]) != pytest.approx(0.0, abs=1e-3)  # off-axis: defocus phase


def test_recover_real_cli_reports_json_and_writes_the_png(tmp_path: Path, images: np.ndarray,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    f = write_real_stack(tmp_path / "s.mat", images[:, :64, :64], WAVELENGTH_NM, DEFOCUS_UM)
    png = tmp_path / "r.png"
    assert main(["recover-real", str(f), "--iterations", "4", "--json", "--out", str(png)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert {"coverage", "od", "phase_rad", "opd_nm", "defocus_um", "grid_turned", "cells", "residuals"} <= set(report)
    assert len(report["residuals"]) == 4
    assert png.stat().st_size > 1000


def test_recover_real_cli_refuses_a_stack_that_does_not_fit_the_rig(tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    f = write_real_stack(tmp_path / "s.mat", np.ones((9, 16, 16), np.float32), WAVELENGTH_NM)
    assert main(["recover-real", str(f)]) == 2
    assert "9 images but rig" in capsys.readouterr().err


def test_a_thin_simulated_object_is_explained_in_every_darkfield_bin(recovered: Recovery, images: np.ndarray) -> None:
    bins = explained_bins(_stack(images), _rig(), recovered)
    assert [b["na_lo"] for b in bins] == [lo for lo, _ in NA_BINS]
    for b in bins:
        assert b["recovered_df_bf"] == pytest.approx(b["real_df_bf"], rel=0.3), b


def _discs(od: np.ndarray, amp_wave: float, phase_wave: float) -> Recovery:
    """A field of separate 7.4 µm discs (0.46 µm pixels) with the given OD each and 0.6 rad of phase,
    plus a 0.5 cycles/µm wave of ``amp_wave`` in log-amplitude and ``phase_wave`` in phase inside them."""
    px, n, pitch = 0.4625, 360, 24
    y, x = np.indices((n, n), dtype=np.float64)
    wave = np.cos(2 * np.pi * 0.5 * (x + 0.6 * y) * px)
    log_amp = np.zeros((n, n))
    phase = np.zeros((n, n))
    centres = [(cy, cx) for cy in range(pitch // 2, n, pitch) for cx in range(pitch // 2, n, pitch)]
    for (cy, cx), d in zip(centres, od, strict=False):
        inside = np.hypot(y - cy, x - cx) < 8.0
        log_amp[inside] = -d * math.log(10.0) / 2.0 + amp_wave * wave[inside]
        phase[inside] = 0.6 + phase_wave * wave[inside]
    field = (np.exp(log_amp + 1j * phase)).astype(np.complex64)
    return Recovery(field, px, 0.0, False, ())


def test_fine_structure_is_told_apart_in_absorption_and_phase_and_cells_differ_by_their_od() -> None:
    rng = np.random.default_rng(0)
    od = 0.4 * np.exp(rng.normal(0.0, 0.3, 225))
    plain, dye, mass = (measure_field(_discs(od, a, p), WAVELENGTH_NM, edge_um=0.0)
                        for a, p in ((0.0, 0.0), (0.2, 0.0), (0.0, 0.2)))
    # A wave of 0.2 (std 0.14) adds about that, in quadrature, to the outlines' fine structure —
    # in the map it is in, and nothing to the other.
    for key, added, other in (("fine_amplitude", dye, mass), ("fine_phase", mass, dye)):
        assert math.sqrt(added[key] ** 2 - plain[key] ** 2) == pytest.approx(0.2 / math.sqrt(2), rel=0.25)
        assert other[key] == pytest.approx(plain[key], abs=0.005)
    even = measure_field(_discs(np.full(225, 0.4), 0.0, 0.0), WAVELENGTH_NM, edge_um=0.0)
    assert plain["cells"]["count"] == 225
    assert plain["cells"]["od"]["cv"] == pytest.approx(od.std() / od.mean(), rel=0.1)
    assert even["cells"]["od"]["cv"] < 0.01
    assert even["cells"]["od"]["median"] == pytest.approx(0.4, rel=0.02)
