"""Tests of sim/cells.py (the builders are exercised through make_smear in test_sample.py)."""

from __future__ import annotations

import numpy as np
import pytest

from sim.cells import Part, SmearObject, build_wbc
from sim.maps import WBC_TYPES
from sim.sample import SmearConfig
from sim.shapes import Blob, Profile, Spheres


def test_part_and_object_validation_name_the_problem() -> None:
    blob = Blob((0.0, 0.0), 1.0)
    with pytest.raises(ValueError, match="membrane"):
        Part("membrane", blob, 1.5, Profile("dome", 1.0))
    with pytest.raises(ValueError, match="profile"):
        Part("granule", Spheres(((0.0, 0.0),), (0.2,)), 1.5, Profile("dome", 1.0))
    with pytest.raises(ValueError, match="profile"):
        Part("nucleus", blob, 1.5)
    part = Part("nucleus", blob, 1.5, Profile("dome", 1.0))
    with pytest.raises(ValueError, match="wbc_type"):
        SmearObject(0, "wbc", (0.0, 0.0), (part,))
    with pytest.raises(ValueError, match="kind"):
        SmearObject(0, "leukocyte", (0.0, 0.0), (part,))


def test_scaling_a_part_keeps_its_texture_attached() -> None:
    part = Part("nucleus", Blob((10.0, 0.0), 2.0), 1.5, Profile("dome", 1.0), texture=((2.0, 0.0, 0.3),),
                texture_amp=0.1)
    small = part.scaled(0.5, (0.0, 0.0))
    assert isinstance(small.shape, Blob)
    assert small.shape.center_um == (5.0, 0.0) and small.shape.radius_um == 1.0
    assert small.texture == ((4.0, 0.0, 0.3),)


@pytest.mark.parametrize("wbc", WBC_TYPES)
def test_every_white_cell_has_body_nucleus_and_stain_keys(wbc: str) -> None:
    parts = build_wbc(np.random.default_rng(0), (50.0, 50.0), 6.0, wbc, SmearConfig())
    structures = [p.structure for p in parts]
    assert structures[0] == "cytoplasm" and "nucleus" in structures
    assert all(p.stain.endswith(f":{wbc}") for p in parts)
    if wbc in ("eosinophil", "basophil", "neutrophil"):
        granules = next(p for p in parts if p.structure == "granule")
        assert isinstance(granules.shape, Spheres) and len(granules.shape.radii_um) > 20


def test_red_cell_texture_varies_each_cell_and_leaves_the_smear_where_it_was() -> None:
    from sim.maps import STRUCTURES
    from sim.rasterize import rasterize
    from sim.sample import make_smear

    def cells(texture: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        smear = make_smear((60.0, 60.0), 3, SmearConfig(rbc_cover=0.4, rbc_texture=texture))
        maps = rasterize(smear, 0.25, (240, 240))
        return maps.thickness_um, maps.instance, maps.structure == STRUCTURES["rbc"]

    t0, inst0, rbc0 = cells(0.0)
    t1, inst1, rbc1 = cells(0.6)
    # The same cells in the same places: only their thickness inside changes.
    assert np.array_equal(inst0, inst1) and np.array_equal(rbc0, rbc1)
    # High-pass (detail under ~2 µm) inside the cells: the texture adds it; a smooth cell has little.
    from scipy import ndimage

    core = ndimage.binary_erosion(rbc0, iterations=4)
    fine0 = (t0 - ndimage.gaussian_filter(t0, 4.0))[core].std()
    fine1 = (t1 - ndimage.gaussian_filter(t1, 4.0))[core].std()
    assert fine1 > 2.0 * fine0
    assert t1[rbc1].mean() == pytest.approx(t0[rbc0].mean(), rel=0.1)  # dry mass kept on average


def test_red_cell_texture_is_validated_by_name() -> None:
    from sim.smearconfig import SampleError

    with pytest.raises(SampleError, match="rbc_texture"):
        SmearConfig(rbc_texture=1.5)
