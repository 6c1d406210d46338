"""The learned finder's second stage: candidate features, the tiny MLP, its weights file, training."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from core.config import ConfigError
from tests.support.drawn_smear import drawn_smear
from trainer.data.config import WbcConfig
from trainer.errors import TrainerError
from trainer.wbc.finder import srgb_to_linear
from trainer.wbc.net import net_centres
from trainer.wbc.stage2 import (
    FEATURE_NAMES,
    N_STAGE2,
    SHIPPED_STAGE2,
    Stage2,
    candidate_features,
    load_stage2,
    save_stage2,
)
from trainer.wbc.stage2_train import Candidates, fit, score, training_arrays

F = {n: i for i, n in enumerate(FEATURE_NAMES)}


def _field(h: int = 60, w: int = 60) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Normalised OD of red cells (1 per channel) with a dense round nucleus (r 4 px) at (20, 20)
    and a small faint speck (r 1 px) at (40, 40)."""
    x = np.ones((3, h, w), np.float32)
    yy, xx = np.mgrid[0:h, 0:w]
    x[:, np.hypot(yy - 20, xx - 20) <= 4] = np.array([[4.0], [5.0], [3.0]], np.float32)
    x[:, np.hypot(yy - 40, xx - 40) <= 1] = 2.0
    return x, np.zeros((h, w), np.float32), np.ones((h, w), bool)


def test_features_tell_a_nucleus_from_a_speck() -> None:
    x, prob, field = _field()
    f = candidate_features(x, prob, field, [(20, 20, 0.9), (40, 40, 0.2)])
    assert f.shape == (2, N_STAGE2) and np.isfinite(f).all()
    nucleus, speck = f
    assert nucleus[F["heat"]] == pytest.approx(0.9)
    assert nucleus[F["sum_ring0"]] == pytest.approx(12.0) and speck[F["sum_ring3"]] == pytest.approx(3.0)
    assert np.expm1(nucleus[F["area_2.0"]]) == pytest.approx(np.pi * 16, rel=0.2)  # µm² at 1 µm/px
    assert speck[F["area_2.0"]] == 0 and speck[F["lobes"]] == 0 and nucleus[F["lobes"]] == 1
    assert nucleus[F["elong_2.0"]] == pytest.approx(1.0, abs=0.05)
    assert nucleus[F["field_edge_um"]] == 15.0  # clipped
    assert candidate_features(x, prob, field, []).shape == (0, N_STAGE2)


def test_field_edge_distance_and_lobes() -> None:
    x, prob, field = _field()
    field[:, :25] = False
    f = candidate_features(x, prob, field, [(20, 20, 0.5), (20, 30, 0.5)])
    assert f[0, F["field_edge_um"]] == 0 and f[1, F["field_edge_um"]] == pytest.approx(6.0, abs=0.5)
    assert f[0, F["lobes"]] == 1
    yy, xx = np.mgrid[0:60, 0:60]
    x[:] = 1.0
    for cx in (16, 25):  # two lobes 3 px apart
        x[:, np.hypot(yy - 20, xx - cx) <= 3] = 4.0
    assert candidate_features(x, prob, field, [(20, 20, 0.5)])[0, F["lobes"]] == 2


def _stage2(threshold: float = 0.5) -> Stage2:
    w1 = np.zeros((2, N_STAGE2), np.float32)
    w1[0, F["heat"]] = 1.0
    return Stage2(np.zeros(N_STAGE2, np.float32), np.ones(N_STAGE2, np.float32), w1, np.zeros(2, np.float32),
                  np.array([4.0, 0.0], np.float32), -2.0, threshold, 0.1)


def test_predict_save_load_and_refusals(tmp_path: Path) -> None:
    s = _stage2()
    f = np.zeros((2, N_STAGE2), np.float32)
    f[:, F["heat"]] = (0.0, 1.0)
    np.testing.assert_allclose(s.predict(f), 1 / (1 + np.exp([2.0, -2.0])), rtol=1e-6)
    save_stage2(s, tmp_path / "s.npz")
    back = load_stage2(str(tmp_path / "s.npz"))
    np.testing.assert_array_equal(back.predict(f), s.predict(f))
    assert (back.threshold, back.candidate_threshold) == pytest.approx((0.5, 0.1))
    with pytest.raises(TrainerError, match="not found"):
        load_stage2(str(tmp_path / "none.npz"))
    with pytest.raises(TrainerError, match=f"expected weights for {N_STAGE2} features"):
        Stage2(s.mean, s.std, s.w1[:, :3], s.b1, s.w2, s.b2, 0.5, 0.1)
    with np.load(tmp_path / "s.npz") as z:
        arrays = {k: z[k] for k in z.files}
    np.savez(tmp_path / "old.npz", **{**arrays, "features": np.array(FEATURE_NAMES[::-1])})
    with pytest.raises(TrainerError, match="retrain"):
        load_stage2(str(tmp_path / "old.npz"))


def test_shipped_stage2_loads_and_is_deterministic() -> None:
    assert SHIPPED_STAGE2.stat().st_size < 50_000
    s = load_stage2()
    assert 0 < s.threshold < 1 and 0 < s.candidate_threshold < 1
    rgb = srgb_to_linear(drawn_smear(seed=1))
    a, b = net_centres(rgb, 0.39, stage2="shipped"), net_centres(rgb.copy(), 0.39, stage2="shipped")
    assert a == b and len(a) == 2
    off = net_centres(rgb, 0.39)
    assert [(x, y) for x, y, _, _ in a] == [(x, y) for x, y, _, _ in off]


def _cands(heat: list[float], hits: list[list[bool]], border: list[bool] | None = None) -> Candidates:
    f = np.zeros((len(heat), N_STAGE2), np.float32)
    f[:, 0] = heat
    n = len(heat)
    return Candidates(f, np.array(hits, bool).reshape(n, -1), np.array(border or [False] * n, bool), "x")


def test_score_follows_the_match_rule() -> None:
    # box 0 hit twice, box 1 missed, one false alarm; the second image has no boxes and one alarm
    a = _cands([0.9, 0.8, 0.3], [[True, False], [True, False], [False, False]])
    b = _cands([0.7], [[]])
    assert score([a, b], [np.ones(3, bool), np.ones(1, bool)]) == (0.5, 0.5)
    assert score([a, b], [np.array([True, False, False]), np.zeros(1, bool)]) == (0.5, 1.0)


def test_training_balances_sets_drops_border_cells_and_learns() -> None:
    rng = np.random.default_rng(0)
    heat = rng.uniform(0, 1, 200)
    big = _cands(list(heat), [[h > 0.5] for h in heat], [h > 0.95 for h in heat])
    small = _cands([0.9, 0.1], [[True], [False]])
    x, y, w = training_arrays([[big], [small]])
    assert len(y) == 200 - int((heat > 0.95).sum()) + 2
    assert w[-2:].sum() == pytest.approx(w[:-2].sum())  # each set weighs the same
    s, loss = fit(x, y, w, hidden=4, epochs=200)
    acc = float(((s.predict(x) >= 0.5) == (y > 0)).mean())
    assert acc > 0.95 and loss < 0.3


def test_config_names_the_stage2_choices() -> None:
    assert WbcConfig().stage2 == "off" and WbcConfig(stage2="w.npz").stage2 == "w.npz"
    with pytest.raises(ConfigError, match=r"wbc\.stage2: expected off \| shipped"):
        WbcConfig(stage2="on")
