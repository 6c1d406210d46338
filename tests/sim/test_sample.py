"""Tests of sim/sample.py (and the cell builders of sim/cells.py it drives)."""

from __future__ import annotations

import math
from itertools import combinations

import numpy as np
import pytest

from sim.cells import WBC_DIAMETER_UM
from sim.maps import WBC_TYPES
from sim.sample import SampleError, Smear, SmearConfig, make_smear, wbc_truth
from sim.shapes import Blob, Capsule


def test_same_seed_gives_the_same_smear_and_other_seeds_differ() -> None:
    a = make_smear((80.0, 60.0), 11)
    assert a == make_smear((80.0, 60.0), 11)
    assert a != make_smear((80.0, 60.0), 12)
    assert [o.id for o in a.objects] == list(range(len(a.objects)))


def test_type_frequencies_follow_the_config_within_binomial_tolerance() -> None:
    cfg = SmearConfig(rbc_cover=0.0, wbc_per_mm2=400.0, debris_per_mm2=0.0, dust_per_mm2=0.0,
                      wbc_fractions=(0.55, 0.25, 0.1, 0.07, 0.03))
    counts = dict.fromkeys(WBC_TYPES, 0)
    for seed in range(40):
        for cell in wbc_truth(make_smear((150.0, 150.0), seed, cfg)):
            counts[cell["type"]] += 1
    n = sum(counts.values())
    assert n > 500
    for t, p in zip(WBC_TYPES, cfg.wbc_fractions, strict=True):
        assert abs(counts[t] - n * p) <= 4.0 * math.sqrt(n * p * (1 - p)) + 1, (t, counts)


def test_white_cells_never_overlap_and_no_red_cell_lies_on_one() -> None:
    smear = make_smear((200.0, 200.0), 3, SmearConfig(wbc_per_mm2=1500.0))
    cells = wbc_truth(smear)
    assert len(cells) > 40
    for a, b in combinations(cells, 2):
        d = math.dist(a["center_um"], b["center_um"])
        assert d >= a["radius_um"] + b["radius_um"], (a["id"], b["id"])
    for rbc in smear.of_kind("rbc"):
        shape = rbc.parts[0].shape
        assert isinstance(shape, Blob)
        for c in cells:
            assert math.dist(rbc.center_um, c["center_um"]) >= shape.max_radius() + c["radius_um"]



def _rbc_pairs_overlapping(smear: Smear, overlap: float) -> int:
    """Pairs of red cells closer than the monolayer allows (their radii's sum x (1 - overlap))."""
    rbcs = smear.of_kind("rbc")
    xy = np.array([r.center_um for r in rbcs])
    rr = np.array([r.parts[0].shape.radius_um for r in rbcs])  # type: ignore[union-attr]
    d = np.hypot(*(xy[:, None, :] - xy[None, :, :]).transpose(2, 0, 1))
    close = d < (rr[:, None] + rr[None, :]) * (1.0 - overlap) - 1e-9
    return int(np.triu(close, 1).sum())


def test_red_cells_past_the_monolayers_jam_pile_on_it() -> None:
    size, m = 120.0, 25.0
    area = (size + 2 * m) ** 2
    mean_r, sd_r = 3.75, 0.3
    for cover, piled in ((0.5, False), (0.8, True)):
        cfg = SmearConfig(rbc_cover=cover, wbc_per_mm2=0.0)
        smear = make_smear((size, size), 2, cfg)
        target = round(cover * area / (math.pi * (mean_r**2 + sd_r**2)))
        assert len(smear.of_kind("rbc")) == pytest.approx(target, rel=0.02 if piled else 0.0)
        assert (_rbc_pairs_overlapping(smear, cfg.rbc_overlap) > 0) == piled

def test_red_cell_size_and_thickness_statistics() -> None:
    cfg = SmearConfig()
    rbcs = make_smear((200.0, 200.0), 5, cfg).of_kind("rbc")
    assert len(rbcs) > 500
    diam = np.array([2 * r.parts[0].shape.radius_um for r in rbcs])  # type: ignore[union-attr]
    rim = np.array([r.parts[0].profile.height_um for r in rbcs])  # type: ignore[union-attr]
    centre = np.array([r.parts[0].profile.centre_um for r in rbcs])  # type: ignore[union-attr]
    assert diam.mean() == pytest.approx(cfg.rbc_diameter_um, abs=0.2)
    assert diam.std() == pytest.approx(cfg.rbc_diameter_sd_um, abs=0.15)
    assert rim.mean() == pytest.approx(cfg.rbc_rim_um, abs=0.05)
    assert centre.mean() == pytest.approx(cfg.rbc_centre_um, abs=0.05)
    assert all("haemoglobin" in r.parts[0].absorbers for r in rbcs)


def test_white_cell_sizes_and_nuclei_by_type() -> None:
    cfg = SmearConfig(rbc_cover=0.0, wbc_per_mm2=1500.0, wbc_fractions=(0.2, 0.2, 0.2, 0.2, 0.2))
    smear = make_smear((200.0, 200.0), 8, cfg)
    truth = {c["id"]: c for c in wbc_truth(smear)}
    fraction: dict[str, list[float]] = {t: [] for t in WBC_TYPES}
    for obj in smear.of_kind("wbc"):
        assert obj.wbc_type is not None
        body = next(p.shape for p in obj.parts if p.structure == "cytoplasm")
        lo, hi = WBC_DIAMETER_UM[obj.wbc_type]
        assert isinstance(body, Blob) and lo / 2 <= body.radius_um <= hi / 2
        lobes = [p for p in obj.parts if p.structure == "nucleus" and isinstance(p.shape, Blob)]
        strands = [p for p in obj.parts if isinstance(p.shape, Capsule)]
        if obj.wbc_type == "neutrophil":
            assert 2 <= len(lobes) <= 5 and len(strands) <= len(lobes) - 1
        elif obj.wbc_type == "eosinophil":
            assert 2 <= len(lobes) <= 3
        elif obj.wbc_type in ("lymphocyte", "monocyte"):
            assert len(lobes) == 1 and not strands
        t = truth[obj.id]
        x0, y0, x1, y1 = t["bbox_um"]
        assert x0 < t["center_um"][0] < x1 and y0 < t["center_um"][1] < y1
        assert 0 < t["nucleus_area_um2"] < t["cell_area_um2"]
        fraction[obj.wbc_type].append(t["nucleus_area_um2"] / t["cell_area_um2"])
    assert np.mean(fraction["lymphocyte"]) > 0.45
    assert np.mean(fraction["lymphocyte"]) > np.mean(fraction["neutrophil"]) + 0.15
    assert np.mean(fraction["monocyte"]) < np.mean(fraction["lymphocyte"])


def test_platelet_clumps_add_close_packed_platelets_and_leave_the_rest_of_the_smear() -> None:
    size = (200.0, 200.0)
    plain = make_smear(size, 4, SmearConfig(wbc_per_mm2=300.0))
    clumped = make_smear(size, 4, SmearConfig(wbc_per_mm2=300.0, platelet_clumps_per_mm2=400.0))
    for kind in ("rbc", "wbc"):  # the clumps draw from a stream of their own
        assert [o.center_um for o in clumped.of_kind(kind)] == [o.center_um for o in plain.of_kind(kind)]

    def crowding(smear: Smear) -> tuple[int, float]:
        xy = np.array([o.center_um for o in smear.of_kind("platelet")])
        d = np.hypot(*(xy[:, None, :] - xy[None, :, :]).transpose(2, 0, 1)) + np.eye(len(xy)) * 1e9
        return len(xy), float(np.mean(d.min(axis=1) < 2.5))

    n_plain, close_plain = crowding(plain)
    n_clumped, close_clumped = crowding(clumped)
    # ~0.0625 mm² with the margin x 400 clumps/mm² x ~11 platelets each
    assert 150 < n_clumped - n_plain < 450
    assert close_plain < 0.2 < 0.6 < close_clumped  # single platelets lie apart, clumped ones on each other


def test_the_field_holds_every_kind_of_unstained_object() -> None:
    smear = make_smear((300.0, 300.0), 2, SmearConfig(wbc_per_mm2=200.0, smudge_per_wbc=0.2))
    kinds = {o.kind for o in smear.objects}
    assert {"rbc", "platelet", "wbc", "smudge", "debris", "dust"} <= kinds
    assert "precipitate" not in kinds and not smear.stained


@pytest.mark.parametrize(
    ("key", "value"),
    [("rbc_cover", 0.95), ("rbc_diameter_um", -1.0), ("wbc_per_mm2", -5.0), ("n_nucleus", 3.0),
     ("rbc_centre_um", 2.0), ("wbc_fractions", (0.5, 0.5, 0.5, 0.0, 0.0)), ("wbc_fractions", (1.0,))],
)
def test_config_rejects_bad_values_naming_the_key(key: str, value: object) -> None:
    with pytest.raises(ValueError, match=key):
        SmearConfig(**{key: value})  # type: ignore[arg-type]


def test_config_from_dict_rejects_unknown_keys_and_accepts_lists() -> None:
    with pytest.raises(SampleError, match="rbc_covr"):
        SmearConfig.from_dict({"rbc_covr": 0.5})
    cfg = SmearConfig.from_dict({"wbc_per_mm2": 100, "wbc_fractions": [0.6, 0.3, 0.05, 0.04, 0.01]})
    assert cfg.wbc_per_mm2 == 100 and cfg.wbc_fractions == (0.6, 0.3, 0.05, 0.04, 0.01)


@pytest.mark.parametrize("size", [(0.0, 10.0), (10.0, -1.0), (float("inf"), 5.0), ("ab", 3)])
def test_bad_field_sizes_are_rejected(size: tuple[float, float]) -> None:
    with pytest.raises(SampleError, match="size_um"):
        make_smear(size, 0)


def test_negative_seed_is_rejected() -> None:
    with pytest.raises(SampleError, match="seed"):
        make_smear((10.0, 10.0), -1)
