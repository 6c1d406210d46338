"""Tests of sim/stain.py: colours by Beer–Lambert at the R/G/B LEDs, artefacts, misregistration."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.typing import NDArray

from sim.maps import STRUCTURES, WBC_TYPES, SampleMaps
from sim.rasterize import rasterize
from sim.sample import SampleError, Smear, SmearConfig, make_smear, wbc_truth
from sim.stain import STAIN_STYLES, StainStyle, misregistration, stain_smear

FIELD = (100.0, 100.0)
PX = 0.293
GRID = (341, 341)
RGB_NM = (630.0, 532.0, 475.0)


@pytest.fixture(scope="module")
def smear() -> Smear:
    cfg = SmearConfig(wbc_per_mm2=1500.0, wbc_fractions=(0.2, 0.2, 0.2, 0.2, 0.2))
    smear = make_smear(FIELD, 24, cfg)  # seed chosen to hold every white-cell type in the field
    inner = {c["type"] for c in wbc_truth(smear) if min(c["center_um"]) > 8 and max(c["center_um"]) < 92}
    assert inner == set(WBC_TYPES)
    return smear


def _rgb(maps: SampleMaps) -> NDArray[np.float32]:
    """Transmission 10^(−OD) at the red, green and blue LEDs, (H, W, 3)."""
    return np.dstack([np.power(10.0, -maps.optical_density(wl)) for wl in RGB_NM])


def _means(smear: Smear, stained: Smear) -> dict[tuple[str, str], NDArray[np.float64]]:
    """Mean RGB transmission per (structure, object type) over labelled pixels."""
    maps = rasterize(stained, PX, GRID)
    rgb = _rgb(maps)
    types = np.array(["none"] + [o.wbc_type or o.kind for o in stained.objects])[maps.instance]
    out = {}
    for sname in ("rbc", "platelet", "nucleus", "cytoplasm", "granule"):
        for t in np.unique(types):
            sel = (maps.structure == STRUCTURES[sname]) & (types == t)
            if sel.sum() >= 20:
                out[(sname, str(t))] = rgb[sel].mean(axis=0)
    return out


@pytest.fixture(scope="module")
def colours(smear: Smear) -> dict[tuple[str, str], NDArray[np.float64]]:
    return _means(smear, stain_smear(smear, 1, "mgg", lab_variation=0.0))


def test_nuclei_and_platelets_are_purple(colours: dict[tuple[str, str], NDArray[np.float64]]) -> None:
    nuclei = [v for (s, _), v in colours.items() if s == "nucleus"]
    assert len(nuclei) == 5
    for r, g, b in [*nuclei, colours[("platelet", "platelet")]]:
        assert b > g + 0.1 and r > g + 0.05
    assert colours[("nucleus", "lymphocyte")].sum() < colours[("nucleus", "monocyte")].sum()  # denser


def test_cytoplasm_colours_by_type(colours: dict[tuple[str, str], NDArray[np.float64]]) -> None:
    r, g, b = colours[("cytoplasm", "lymphocyte")]
    assert b > g > r + 0.05  # sky blue
    r, g, b = colours[("cytoplasm", "monocyte")]
    assert b > g and b > r and max(r, g) - min(r, g) < 0.06  # grey-blue
    r, g, b = colours[("cytoplasm", "neutrophil")]
    assert r > g and b > g and min(r, g, b) > 0.75  # pale pink/lilac


def test_granules_and_red_cells(colours: dict[tuple[str, str], NDArray[np.float64]]) -> None:
    eos = colours[("granule", "eosinophil")]
    neut = colours[("cytoplasm", "neutrophil")]
    assert eos[0] / eos[1] > 2.0 * neut[0] / neut[1]  # much redder
    assert eos[0] > 0.7 and eos[1] < 0.4
    baso = colours[("granule", "basophil")]  # purple-black: darkest structure of the field
    assert baso.sum() < 1.3 and baso.sum() < min(v.sum() for k, v in colours.items() if k[1] != "basophil")
    assert baso[1] < min(baso[0], baso[2])
    r, g, b = colours[("rbc", "rbc")]
    assert r > b > g and r > 0.85  # pink


def test_wright_giemsa_is_bluer_than_mgg(smear: Smear, colours: dict[tuple[str, str], NDArray[np.float64]]) -> None:
    wg = _means(smear, stain_smear(smear, 1, "wright-giemsa", lab_variation=0.0))
    for key in (("nucleus", "neutrophil"), ("nucleus", "lymphocyte"), ("rbc", "rbc")):
        assert wg[key][2] - wg[key][0] > colours[key][2] - colours[key][0]


def test_lab_variation_changes_dye_strength_and_balance(smear: Smear) -> None:
    def nucleus_od(seed: int, variation: float) -> NDArray[np.float64]:
        stained = stain_smear(smear, seed, "mgg", lab_variation=variation)
        nuclei = [p for o in stained.of_kind("wbc") for p in o.parts if p.structure == "nucleus"]
        az = [p.absorbers.get("azure", 0.0) for p in nuclei]
        eo = [p.absorbers.get("eosin", 0.0) for p in nuclei]
        return np.array([np.mean(az), np.mean(eo)])

    fixed = [nucleus_od(s, 0.0) for s in range(6)]
    varied = [nucleus_od(s, 0.3) for s in range(6)]
    assert np.std([a / e for a, e in fixed]) < 0.03
    assert np.std([a / e for a, e in varied]) > 0.1
    np.testing.assert_array_equal(nucleus_od(3, 0.3), nucleus_od(3, 0.3))


def test_stained_smear_keeps_ids_shrinks_cells_and_adds_artefacts(smear: Smear) -> None:
    stained = stain_smear(smear, 5, precipitate_per_mm2=3000.0, water_artefact_fraction=0.5)
    assert stained.stained and stained.stain_style == "mgg"
    assert [o.id for o in stained.objects] == list(range(len(stained.objects)))
    assert [o.kind for o in stained.objects[: len(smear.objects)]] == [o.kind for o in smear.objects]
    assert stained.of_kind("precipitate")
    before = {c["id"]: c for c in wbc_truth(smear)}
    for c in wbc_truth(stained):
        ratio = c["cell_area_um2"] / before[c["id"]]["cell_area_um2"]
        assert 0.92**2 - 1e-6 <= ratio <= 0.98**2 + 1e-6
        assert c["center_um"] == pytest.approx(before[c["id"]]["center_um"])
    maps = rasterize(stained, PX, GRID)
    plain = rasterize(smear, PX, GRID)
    for name in ("precipitate", "water_artefact"):
        assert (maps.structure == STRUCTURES[name]).any() and not (plain.structure == STRUCTURES[name]).any()
    assert "azure" in maps.absorbers and "azure" not in plain.absorbers
    rgb = _rgb(maps)
    water = maps.structure == STRUCTURES["water_artefact"]
    rbc = maps.structure == STRUCTURES["rbc"]
    assert rgb[water, 1].mean() > rgb[rbc, 1].mean() + 0.05  # clear blotches: dye washed out
    assert rgb[maps.structure == STRUCTURES["precipitate"]].mean() < 0.5  # dark specks


def test_staining_is_deterministic_and_validated(smear: Smear) -> None:
    assert stain_smear(smear, 9) == stain_smear(smear, 9)
    assert stain_smear(smear, 9) != stain_smear(smear, 10)
    with pytest.raises(SampleError, match="mgg"):
        stain_smear(smear, 0, "giemsa-classic")
    with pytest.raises(SampleError, match="already stained"):
        stain_smear(stain_smear(smear, 0), 1)
    with pytest.raises(SampleError, match="lab_variation"):
        stain_smear(smear, 0, lab_variation=-0.1)
    with pytest.raises(SampleError, match="loads"):
        StainStyle("bad", {"nucleus": (-1.0, 0.0)})
    assert set(STAIN_STYLES) >= {"mgg", "wright-giemsa"}


def test_patchy_dye_varies_the_red_cells_dye_within_each_cell_and_nothing_else(smear: Smear) -> None:
    from dataclasses import replace

    from scipy import ndimage

    even = rasterize(stain_smear(smear, 9, "wright-giemsa"), PX, GRID)
    patchy_style = replace(STAIN_STYLES["wright-giemsa"], rbc_patchiness=0.6)
    patchy = rasterize(stain_smear(smear, 9, patchy_style), PX, GRID)
    # The same cells, shrunk and dyed as before on average: only the dye moves within them.
    assert np.array_equal(even.instance, patchy.instance)
    assert np.array_equal(even.thickness_um, patchy.thickness_um)
    assert np.array_equal(even.absorbers["haemoglobin"], patchy.absorbers["haemoglobin"])
    rbc = ndimage.binary_erosion(even.structure == STRUCTURES["rbc"], iterations=3)
    for dye in ("azure", "eosin"):
        a0, a1 = even.absorbers[dye], patchy.absorbers[dye]
        assert a1[rbc].mean() == pytest.approx(a0[rbc].mean(), rel=0.1)
        # Relative to the dye an evenly stained cell holds there, it now varies by about the patchiness.
        ratio = a1[rbc] / a0[rbc]
        assert 0.4 < ratio.std() < 0.8
    # White cells keep their even dye.
    wbc = ndimage.binary_erosion(np.isin(even.structure, [STRUCTURES["nucleus"], STRUCTURES["cytoplasm"]]),
                                 iterations=2)
    assert np.allclose(even.absorbers["azure"][wbc], patchy.absorbers["azure"][wbc])
    with pytest.raises(SampleError, match="rbc_patchiness"):
        StainStyle("bad", rbc_patchiness=-0.1)


def test_misregistration_is_small_bounded_and_deterministic() -> None:
    draws = [misregistration(s, max_shift_um=10.0, max_rotation_deg=0.5, max_scale=0.01) for s in range(50)]
    assert misregistration(3, 10.0) == misregistration(3, 10.0)
    assert all(abs(d.shift_um[0]) <= 10 and abs(d.shift_um[1]) <= 10 for d in draws)
    assert all(abs(d.rotation_deg) <= 0.5 and abs(d.scale - 1) <= 0.01 for d in draws)
    assert len({d.shift_um for d in draws}) == 50
    with pytest.raises(SampleError, match="max_shift_um"):
        misregistration(0, max_shift_um=-1.0)
