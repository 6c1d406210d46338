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
