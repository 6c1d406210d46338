"""The cnn's second check (``trainer.wbc.verify``): crops at 0.5 µm/px, the combined score, the shipped verifier."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.support.drawn_smear import drawn_smear
from trainer.data.config import WbcConfig
from trainer.errors import TrainerError
from trainer.wbc.density import density_input
from trainer.wbc.finder import find_wbcs, srgb_to_linear
from trainer.wbc.verify import (
    CROP_PX,
    SHIPPED_VERIFY,
    VERIFY_UM,
    combine,
    crops,
    fine_density,
    load_verifier,
    verify_probability,
)


def test_crops_are_centred_and_padded_with_no_field() -> None:
    density = np.zeros((3, 50, 60), np.float32)
    density[:, 20, 30] = 5.0
    x = crops(density, np.ones((50, 60), bool), np.array([[30, 20], [0, 0]], np.float32), side=10)
    assert x.shape == (2, 4, 10, 10)
    assert x[0, 0, 5, 5] == 5.0 and x[0, :3].sum() == 15.0 and x[0, 3].min() == 1
    assert x[1, 3, :5].max() == 0 and x[1, 3, :, :5].max() == 0 and x[1, 3, 5:, 5:].min() == 1  # corner


def test_fine_density_resamples_to_half_a_micron_over_the_same_reference() -> None:
    rgb = srgb_to_linear(drawn_smear(seed=1))  # (3, 300, 400) at 0.39 µm/px
    d = density_input(rgb, 0.39)
    fine, field, zoom = fine_density(d, 0.39)
    assert zoom == pytest.approx(0.39 / VERIFY_UM)
    assert fine.shape == (3, round(300 * zoom), round(400 * zoom)) and field.shape == fine.shape[1:]
    # the red cells (the material's median) stay near 1 at either resolution
    for c in range(3):
        assert np.median(fine[c][fine.sum(axis=0) > 0.5]) == pytest.approx(np.median(
            d.density[c][d.density.sum(axis=0) > 0.5]), rel=0.25)


def test_combine_is_a_weighted_geometric_mean() -> None:
    s1, s2 = np.array([0.9, 0.2], np.float32), np.array([0.1, 0.8], np.float32)
    np.testing.assert_allclose(combine(s1, s2, 0.0), s1, rtol=1e-6)
    np.testing.assert_allclose(combine(s1, s2, 1.0), s2, rtol=1e-6)
    np.testing.assert_allclose(combine(s1, s2, 0.5), np.sqrt(s1 * s2), rtol=1e-6)
    with pytest.raises(ValueError, match="weight"):
        combine(s1, s2, 1.5)


def test_shipped_verifier_is_small_and_deterministic() -> None:
    assert SHIPPED_VERIFY.stat().st_size < 1_000_000
    v = load_verifier()
    assert 0 <= v.weight <= 1 and 0 < v.threshold < 1 and 0 < v.candidate_threshold <= v.threshold
    x = np.random.default_rng(0).uniform(0, 3, (3, 4, CROP_PX, CROP_PX)).astype(np.float32)
    a, b = verify_probability(v, x), verify_probability(v, x, batch=1)
    assert a.shape == (3,) and ((a >= 0) & (a <= 1)).all()
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)  # batching does not change a crop's score


def test_cnn_with_the_verifier_keeps_a_subset_of_the_candidates() -> None:
    """The second check only removes candidates, keeps both drawn white cells and nothing else, and is
    deterministic. (At the check's low candidate threshold the shipped first stage proposes many red-cell
    discs of this cartoon; real figures in docs/wbc-photos.md.)"""
    rgb = srgb_to_linear(drawn_smear(seed=1))
    v = load_verifier()
    loose = find_wbcs(rgb, 0.39, WbcConfig(method="cnn", net_threshold=v.candidate_threshold))
    checked = find_wbcs(rgb, 0.39, WbcConfig(method="cnn", stage2="shipped"))
    assert {(c.x, c.y) for c in checked} <= {(c.x, c.y) for c in loose} and len(loose) > len(checked) == 2
    assert any(abs(c.x - 120) < 4 and abs(c.y - 150) < 4 for c in checked)  # both drawn cells kept
    assert any(abs(c.x - 300) < 4 and abs(c.y - 200) < 4 for c in checked)
    assert find_wbcs(rgb, 0.39, WbcConfig(method="cnn", stage2="shipped")) == checked  # deterministic


def test_bad_verifier_files(tmp_path: Path) -> None:
    with pytest.raises(TrainerError, match="not found"):
        load_verifier(str(tmp_path / "none.onnx"))
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    with pytest.raises(TrainerError, match="not a loadable ONNX model"):
        load_verifier(str(tmp_path / "junk.onnx"))
