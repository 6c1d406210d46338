"""Nucleus segmentation across stain palettes of different labs, and the fidelity metric."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from trainer.nucleus import components, nucleus_fidelity, segment_nuclei

#: Optical density per unit of dye, (R, G, B): azure absorbs red (648 nm), eosin green (522 nm).
AZURE = np.array([0.80, 0.40, 0.08])
EOSIN = np.array([0.04, 0.55, 0.30])

#: (azure strength, eosin strength, white balance gains, exposure) — from pale/pink to dark/blue labs.
LABS = {
    "wright": (1.0, 1.0, (1.0, 0.97, 0.95), 0.92),
    "mgg-blue": (1.35, 0.7, (0.92, 0.96, 1.0), 0.88),
    "giemsa-pale": (0.7, 0.8, (1.0, 1.0, 1.0), 0.97),
    "pink-warm": (0.85, 1.4, (1.0, 0.9, 0.82), 0.85),
    "phone-camera": (1.1, 1.1, (0.95, 1.0, 0.9), 0.75),
}


def _disc(shape: tuple[int, int], cy: float, cx: float, r: float) -> np.ndarray:
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (yy - cy) ** 2 + (xx - cx) ** 2 < r * r


def render_cell(lab: str, lobes: int = 1, size: int = 64, seed: int = 0,
                eosinophil: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """A stained WBC crop ``(H, W, 3)`` in [0, 1] with red cells around it, and its true nucleus mask."""
    azure, eosin, gains, exposure = LABS[lab]
    rng = np.random.default_rng(seed)
    s, c = (size, size), size / 2
    nucleus = np.zeros(s, bool)
    for k in range(lobes):
        angle = 2 * np.pi * k / max(lobes, 1)
        off = 0.0 if lobes == 1 else size * 0.17
        nucleus |= _disc(s, c + off * np.sin(angle), c + off * np.cos(angle), size * (0.2 if lobes == 1 else 0.1))
    cell = _disc(s, c, c, size * 0.36)
    od = np.zeros((*s, 3))
    for cy, cx in ((size * 0.1, size * 0.1), (size * 0.9, size * 0.85), (size * 0.12, size * 0.92)):
        od += _disc(s, cy, cx, size * 0.16)[..., None] * (eosin * 0.7 * EOSIN + np.array([0.02, 0.05, 0.12]))
    cytoplasm = azure * 0.25 * AZURE + eosin * 0.1 * EOSIN
    if eosinophil:  # orange granules: eosin-dense, little azure
        granules = cell & ~nucleus & (rng.random(s) < 0.5)
        od += granules[..., None] * eosin * 1.1 * EOSIN
    od += (cell & ~nucleus)[..., None] * cytoplasm
    od += nucleus[..., None] * (azure * 1.0 * AZURE + eosin * 0.6 * EOSIN) * rng.uniform(0.85, 1.15, (*s, 1))
    rgb = exposure * np.array(gains) * 10.0 ** (-od) + rng.normal(0, 0.01, (*s, 3))
    return np.clip(rgb, 0, 1), nucleus


@pytest.mark.parametrize("lab", sorted(LABS))
@pytest.mark.parametrize("lobes", [1, 3])
def test_segmentation_finds_the_nucleus_in_every_lab_palette(lab: str, lobes: int) -> None:
    rgb, truth = render_cell(lab, lobes=lobes, seed=lobes)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no deprecated skimage calls
        mask = segment_nuclei(rgb)
    iou = (mask & truth).sum() / (mask | truth).sum()
    assert iou > 0.8, f"{lab}: IoU {iou:.2f}"
    assert components(mask)[1] == lobes


def test_red_cells_eosinophil_granules_and_empty_crops_are_not_nuclei() -> None:
    rgb, truth = render_cell("pink-warm", eosinophil=True)
    mask = segment_nuclei(rgb)
    assert (mask & ~truth).sum() < 0.05 * truth.sum()
    blank = np.clip(0.9 + np.random.default_rng(0).normal(0, 0.01, (64, 64, 3)), 0, 1)
    assert not segment_nuclei(blank).any()
    assert segment_nuclei((rgb * 255).astype(np.uint8)).sum() == pytest.approx(mask.sum(), rel=0.05)


def test_fidelity_flags_added_and_erased_lobes() -> None:
    one, _ = render_cell("wright", lobes=1, seed=3)
    same = nucleus_fidelity(one, one)
    assert same == {"nucleus_iou": 1.0, "n_target": 1.0, "n_pred": 1.0, "added": 0.0, "removed": 0.0,
                    "flagged": 0.0}
    extra = one.copy()
    extra[4:14, 28:38] = one[27:37, 27:37]  # paste a piece of nucleus into the background
    added = nucleus_fidelity(extra, one)
    assert (added["added"], added["removed"], added["flagged"]) == (1.0, 0.0, 1.0)
    erased = nucleus_fidelity(one, extra)
    assert (erased["added"], erased["removed"], erased["flagged"]) == (0.0, 1.0, 1.0)
    assert 0.5 < added["nucleus_iou"] < 1.0


def test_segmentation_rejects_non_rgb_input() -> None:
    with pytest.raises(ValueError, match=r"\(H, W, 3\)"):
        segment_nuclei(np.zeros((3, 16, 16)))


@pytest.mark.parametrize("style", ["mgg", "wright-giemsa"])
def test_segmentation_matches_the_simulator_nucleus_area(style: str) -> None:
    from firmware_bridge.rigs import get_profile
    from sim.microscope import Microscope
    from trainer.data.synthetic import render_stained_field

    px = Microscope(get_profile("thesis-43")).pixel_um
    raw, cells = render_stained_field(256, 0, style=style, lab_variation=0.3, smear={"wbc_per_mm2": 1500.0})
    rgb = np.moveaxis(np.clip((raw.astype(np.float64) - 16) / (4095 - 16), 0, 1), 0, -1)
    ratios, stray = [], []
    yy, xx = np.mgrid[:64, :64]
    for c in cells:
        cx, cy = (int(v) for v in c["center_px"])
        if not (c["inside"] and 32 <= cx <= 224 and 32 <= cy <= 224):
            continue
        labels, n = components(segment_nuclei(rgb[cy - 32:cy + 32, cx - 32:cx + 32]))
        in_cell = (yy - 32) ** 2 + (xx - 32) ** 2 < (c["radius_um"] / px) ** 2
        own = [k for k in range(1, n + 1) if (in_cell & (labels == k)).sum() > 0.5 * (labels == k).sum()]
        ratios.append(sum((labels == k).sum() for k in own) / (c["nucleus_area_um2"] / px**2))
        stray.append(n - len(own))
    assert len(ratios) >= 3
    assert 0.85 < float(np.median(ratios)) < 1.2, ratios
    assert np.mean(stray) < 0.5  # red-cell rims are not nuclei
