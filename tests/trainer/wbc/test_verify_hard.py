"""Hard negatives by appearance: the dark body at a crop's centre, on drawn and on real crops."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.support.real_data import WBC_PHOTOS
from trainer.wbc.verify import CROP_PX, VERIFY_UM
from trainer.wbc.verify_data import Harvest
from trainer.wbc.verify_hard import dark_body, hard_negatives
from trainer.wbc.verify_train import draw, draw_cdf


def _crop(radius_um: float, total: float, side: int = CROP_PX, dx_px: int = 0) -> np.ndarray:
    """A red-cell background (density 1 per channel) with a flat disc of total density ``total`` at the centre."""
    x = np.ones((4, side, side), np.float32)
    yy, xx = np.mgrid[:side, :side] - side // 2 + 0.5
    disc = (yy ** 2 + (xx - dx_px) ** 2) <= (radius_um / VERIFY_UM) ** 2
    x[:3, disc] = total / 3
    return x


def test_dark_body_measures_the_disc_at_the_centre() -> None:
    x = np.stack([_crop(4.0, 12.0), _crop(1.0, 12.0), _crop(4.0, 12.0, dx_px=4), _crop(4.0, 4.0)])
    peak, area = dark_body(x)
    np.testing.assert_allclose(peak[[0, 2, 3]], [12.0, 12.0, 4.0], rtol=0.02)  # the smoothing keeps a 4 µm disc's peak
    assert 3 < peak[1] < 11.5  # and blurs a 1 µm disc's
    # a nucleus-sized disc (r 4 µm: 50 µm²), a platelet-sized one (r 1 µm: 3 µm², blurred), off-centre by 2 µm
    assert area[0] == pytest.approx(np.pi * 16, rel=0.1) and area[2] == pytest.approx(area[0], rel=0.05)
    assert area[1] < 8
    assert area[3] == pytest.approx(400)  # a pale body barely above the red cells: its outline takes the whole window


def test_hard_negatives_pick_small_and_pale_non_cells_only() -> None:
    cells = [_crop(r, t) for r, t in ((4.0, 12.0), (4.5, 10.0), (3.5, 14.0), (4.0, 11.0))]
    negatives = [_crop(1.0, 12.0), _crop(5.0, 4.0), _crop(4.0, 12.0), _crop(0.8, 3.5)]  # platelet, smudge, unboxed cell
    x, y = np.stack(cells + negatives), np.r_[np.ones(4), np.zeros(4)]
    assert hard_negatives(x, y).tolist() == [False] * 4 + [True, True, False, True]
    assert not hard_negatives(x[:4], y[:4]).any() and not hard_negatives(x[4:], y[4:]).any()  # one class: none
    with pytest.raises(ValueError, match="one label per crop"):
        hard_negatives(x, y[:3])
    with pytest.raises(ValueError, match="verifier crops"):
        dark_body(x[:, :3])


def test_draw_weights_hard_negatives() -> None:
    x = np.stack([_crop(4.0, 12.0)] * 2 + [_crop(1.0, 12.0), _crop(4.0, 12.0)])
    g = Harvest(x.astype(np.float16), np.array([1, 1, 0, 0], np.float32))
    cdf = draw_cdf(g, 4.0)
    assert cdf is not None and cdf.tolist() == [1, 2, 6, 7]  # the platelet-like non-cell weighs 4
    rng = np.random.default_rng(0)
    counts = np.bincount([draw(g, rng, False, cdf) for _ in range(7000)], minlength=4)
    np.testing.assert_allclose(counts / 7000, [1 / 7, 1 / 7, 4 / 7, 1 / 7], atol=0.02)
    assert draw_cdf(g, 1.0) is None
    with pytest.raises(ValueError, match="gain"):
        draw_cdf(g, 0.5)


PIG = WBC_PHOTOS / "pig" / "train" / "images"
PIG_UM = 0.658  # the auto scale of pig/train
# Out-of-fold false alarms of the shipped verifier on pig/train (image, x, y in image px), sorted by eye
PLATELETS = [("386_JPG.rf.939741c5da3a479cf41f4cef98138801.jpg", 269, 158),  # a single platelet among red cells
             ("5_JPG.rf.a3396b1ffa850a2cb84b4ce41accfcfa.jpg", 290, 324)]  # a small dark clump on an empty field
WITH_CELLS = ["386_JPG.rf.939741c5da3a479cf41f4cef98138801.jpg", "196_JPG.rf.e9065615feb3bd92c63e0bbc20cda7c8.jpg",
              "135_JPG.rf.5442fb448043ad13c9dda5d1ec53fae1.jpg", "2_jpg.rf.d5a2a93cb7ac05da20a20d29159f9ec2.jpg"]


def _real_crops(name: str, points: list[tuple[float, float]] | None) -> np.ndarray:
    """Verifier crops of a pig/train photograph at ``points`` (image px), or at its labelled cells' centres."""
    from core.images import read_rgb
    from trainer.wbc.density import density_input
    from trainer.wbc.finder import srgb_to_linear
    from trainer.wbc.labelled import read_boxes
    from trainer.wbc.verify import crops, fine_density

    path = PIG / name
    rgb = srgb_to_linear(read_rgb(path))
    if points is None:
        points = [((b.x0 + b.x1) / 2, (b.y0 + b.y1) / 2) for b in read_boxes(Path(path), rgb.shape[2], rgb.shape[1])]
    fine, field, zoom = fine_density(density_input(rgb, PIG_UM), PIG_UM)
    return crops(fine, field, (np.array(points, np.float32) + 0.5) * zoom - 0.5)


@pytest.mark.skipif(not PIG.is_dir(), reason=f"real labelled photographs not present at {PIG}")
def test_real_platelets_are_hard_and_labelled_cells_are_not() -> None:
    cells = np.concatenate([_real_crops(n, None) for n in WITH_CELLS])
    platelets = np.concatenate([_real_crops(n, [(x, y)]) for n, x, y in PLATELETS])
    x, y = np.concatenate([cells, platelets]), np.r_[np.ones(len(cells)), np.zeros(len(platelets))]
    _, area = dark_body(x)
    assert len(cells) == 9 and area[:9].min() > 60 and area[9:].max() < 20  # µm²: nuclei vs platelets
    first = hard_negatives(x, y)
    assert first.tolist() == [False] * 9 + [True, True]
    order = np.random.default_rng(0).permutation(len(y))  # the same picks in any order (deterministic)
    assert hard_negatives(x[order], y[order]).tolist() == first[order].tolist()
