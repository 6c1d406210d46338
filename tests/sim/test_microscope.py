"""The virtual microscope on synthetic smears: exposures, darkfield levels, reproducibility."""

from __future__ import annotations

import numpy as np
import pytest

from firmware_bridge.geometry import ArrayGeometry, Led
from firmware_bridge.recipes import resolve_recipe
from firmware_bridge.rigs import get_profile
from sim.microscope import HIGH_EXPOSURE_FACTOR, Microscope, MicroscopeConfig, PreparedField
from sim.rasterize import rasterize
from sim.sample import SmearConfig, make_smear

N = 96


@pytest.fixture(scope="module")
def thesis() -> tuple[Microscope, PreparedField]:
    m = Microscope(get_profile("thesis-43"))
    smear = make_smear((N * m.pixel_um,) * 2, 5, SmearConfig(wbc_per_mm2=2000.0))
    return m, m.prepare(rasterize(smear, m.fine_pixel_um, m.fine_shape((N, N))))


def test_darkfield_pairs_differ_the_way_the_seed_describes(thesis: tuple[Microscope, PreparedField]) -> None:
    m, field = thesis
    recipe = resolve_recipe("full", m.geometry)
    exposures = m.calibrate(field, recipe)
    stack = field.render_stack(recipe, exposures, np.random.default_rng(0)).astype(np.float64)
    top, black = m.config.camera.max_adu, m.config.camera.black_level_adu
    names = recipe.channel_names
    for led in m.geometry.darkfield_indices[:6]:
        low, high = stack[names.index(f"led{led}:low")], stack[names.index(f"led{led}:high")]
        assert (low >= top).mean() < 0.01  # the low exposure keeps the highlights
        assert (high >= top).mean() > (low >= top).mean()  # the high one burns some pixels...
        ok = (high < 0.9 * top) & (low > black + 20)  # ...and is 5x brighter where it does not
        ratio = np.median((high[ok] - black) / (low[ok] - black))
        assert ratio == pytest.approx(HIGH_EXPOSURE_FACTOR, rel=0.1)
    bf = stack[names.index("bf")]
    assert 0.3 * top < np.median(bf) < 0.9 * top


def test_same_seed_reproduces_the_stack(thesis: tuple[Microscope, PreparedField]) -> None:
    m, field = thesis
    recipe = resolve_recipe("le8", m.geometry)
    exposures = m.calibrate(field, recipe)
    a = field.render_stack(recipe, exposures, np.random.default_rng(3))
    b = field.render_stack(recipe, exposures, np.random.default_rng(3))
    assert a.dtype == np.uint16 and a.shape == (4, 3, N, N)
    assert np.array_equal(a, b)


def test_brightfield_shift_moves_only_the_brightfield_image(thesis: tuple[Microscope, PreparedField]) -> None:
    m, field = thesis
    recipe = resolve_recipe("le8", m.geometry)
    exposures = m.calibrate(field, recipe)
    plain = field.render_stack(recipe, exposures, np.random.default_rng(1)).astype(float)
    shifted = field.render_stack(recipe, exposures, np.random.default_rng(1),
                                 bf_shift_um=(3 * m.pixel_um, 0.0)).astype(float)
    assert np.array_equal(plain[1:], shifted[1:])
    err_unshifted = np.abs(plain[0] - shifted[0])[:, 8:-8, 8:-8].mean()
    err_rolled = np.abs(np.roll(plain[0], 3, axis=-1) - shifted[0])[:, 8:-8, 8:-8].mean()
    assert err_rolled < 0.5 * err_unshifted


def test_darkfield_to_brightfield_ratio_is_of_the_reported_order() -> None:
    """Real LED-array data of blood smears: mean darkfield / brightfield ≈ 1/70 at NA 0.1."""
    nas = (0.0, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5)
    leds = tuple(Led(i, 50 * float(np.tan(np.arcsin(na))), 0.0, 50.0) for i, na in enumerate(nas))
    m = Microscope(ArrayGeometry("na01", leds, 0.1, 4.0), MicroscopeConfig(oversample=4))
    smear = make_smear((128 * m.pixel_um,) * 2, 11, SmearConfig())
    images = m.prepare(rasterize(smear, m.fine_pixel_um, m.fine_shape((128, 128)))).intensities(range(len(nas)))
    ratios = images[1:].mean(axis=(1, 2, 3)) / images[0].mean()
    mean_ratio = float(ratios.mean())
    assert 1 / 200 < mean_ratio < 1 / 20, f"darkfield/brightfield = 1/{1 / mean_ratio:.0f}"
    assert np.all(np.diff(ratios) < 0)  # darker the further outside the NA


def test_lit_intensity_with_no_leds_is_black(thesis: tuple[Microscope, PreparedField]) -> None:
    _, field = thesis
    img, _ = field.lit_intensity([])
    assert img.shape == (3, N, N) and not img.any()


def test_sample_on_the_wrong_grid_is_refused() -> None:
    m = Microscope(get_profile("thesis-43"))
    smear = make_smear((20.0, 20.0), 1, SmearConfig())
    with pytest.raises(ValueError, match="µm pixels"):
        m.prepare(rasterize(smear, m.pixel_um, (64, 64)))


def test_diffuse_light_adds_one_darkfield_pattern_to_every_led(thesis: tuple[Microscope, PreparedField]) -> None:
    m, field = thesis
    level = 2e-3
    lit = Microscope(m.geometry, MicroscopeConfig(diffuse_light=level))
    lit_field = lit.prepare(rasterize(make_smear((N * m.pixel_um,) * 2, 5, SmearConfig(wbc_per_mm2=2000.0)),
                                      m.fine_pixel_um, m.fine_shape((N, N))))
    leds = [0, len(m.geometry.leds) - 1]  # the central (brightfield) LED and an outer darkfield one
    added = lit_field.intensities(leds) - field.intensities(leds)
    pattern = field.diffuse()
    assert pattern.shape == (3, N, N)
    np.testing.assert_allclose(pattern.mean(axis=(1, 2)), 1.0, rtol=1e-5)
    for extra in added:  # the same light under either LED, the sample's darkfield from everywhere
        np.testing.assert_allclose(extra, level * pattern, rtol=1e-3, atol=1e-7)
    # It is bright where the sample scatters, like a darkfield image, not like brightfield.
    dark = field.intensities([leds[1]])[0, 1].ravel()
    bright = field.intensities([0])[0, 1].ravel()
    assert np.corrcoef(pattern[1].ravel(), dark)[0, 1] > 0.3
    assert np.corrcoef(pattern[1].ravel(), bright)[0, 1] < 0.0


def test_diffuse_light_out_of_range_is_refused() -> None:
    with pytest.raises(ValueError, match="diffuse_light must be in"):
        MicroscopeConfig(diffuse_light=0.5)
