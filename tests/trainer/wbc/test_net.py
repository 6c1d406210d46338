"""The shipped learned finder (``net``): loads without pickle, finds drawn white cells, marks cut ones."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from tests.support.drawn_smear import drawn_smear
from trainer.data.config import WbcConfig
from trainer.errors import TrainerError
from trainer.wbc.finder import find_wbcs, srgb_to_linear
from trainer.wbc.net import SHIPPED, WbcNet, load_net, peaks, save_net

NET = WbcConfig(method="net")


def test_shipped_weights_are_small_plain_arrays() -> None:
    assert SHIPPED.stat().st_size < 100_000
    with np.load(SHIPPED, allow_pickle=False) as z:
        assert "__threshold__" in z.files
    net, thr = load_net()
    assert 0 < thr < 1 and sum(p.numel() for p in net.parameters()) < 5000


@pytest.mark.parametrize(("seed", "kw"), [(1, {}), (2, {"field_stop": True}), (4, {"tint": (0.7, 1.0, 0.8)})])
def test_finds_drawn_white_cells(seed: int, kw: dict) -> None:
    cells = find_wbcs(srgb_to_linear(drawn_smear(seed=seed, **kw)), 0.39, NET)
    got = sorted((c.x, c.y) for c in cells)
    assert len(got) == 2, got
    for (x, y), (tx, ty) in zip(got, [(120, 150), (300, 200)], strict=True):
        assert abs(x - tx) < 12 and abs(y - ty) < 12  # within a white-cell radius (6 µm = 15 px)


def test_red_cells_alone_give_nothing_and_border_cells_are_cut() -> None:
    assert find_wbcs(srgb_to_linear(drawn_smear(seed=5, wbcs=())), 0.39, NET) == []
    cells = find_wbcs(srgb_to_linear(drawn_smear(seed=3, wbcs=((120, 150), (396, 100)))), 0.39, NET)
    assert sorted((c.x > 300, c.cut) for c in cells) == [(False, False), (True, True)]


def test_peaks_keep_maxima_apart() -> None:
    prob = np.zeros((40, 40), np.float32)
    prob[10, 10], prob[10, 13], prob[30, 30] = 0.9, 0.8, 0.5
    assert peaks(prob, 0.4, nms_px=6) == [(10, 10, pytest.approx(0.9)), (30, 30, 0.5)]
    assert peaks(prob, 0.6, nms_px=1) == [(10, 10, pytest.approx(0.9)), (10, 13, pytest.approx(0.8))]


def test_save_load_round_trip_and_missing_file(tmp_path: Path) -> None:
    torch.manual_seed(0)
    net = WbcNet(width=8)
    save_net(net, tmp_path / "n.npz", 0.4)
    back, thr = load_net(str(tmp_path / "n.npz"))
    x = torch.randn(1, 17, 5, 5)
    torch.testing.assert_close(back(x), net.eval()(x))
    assert thr == pytest.approx(0.4)
    with pytest.raises(TrainerError, match="weights not found"):
        load_net(str(tmp_path / "none.npz"))
