"""The shipped convolutional finder (``cnn``): input layout, loading, deterministic heat maps, cells."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from core.config import ConfigError
from tests.support.drawn_smear import drawn_smear
from trainer.data.config import WbcConfig
from trainer.errors import TrainerError
from trainer.wbc.cnn import SHIPPED_CNN, cnn_heat_map, cnn_input, load_cnn, sigmoid
from trainer.wbc.density import net_input
from trainer.wbc.finder import find_wbcs, srgb_to_linear

CNN = WbcConfig(method="cnn")


def test_input_is_padded_to_the_stride_with_no_field() -> None:
    density = np.full((3, 5, 7), 30.0, np.float32)
    x = cnn_input(density, np.ones((5, 7), bool), 4)
    assert x.shape == (1, 4, 8, 8)
    assert x[0, :3, :5, :7].max() == x[0, :3, :5, :7].min() == 10.0  # clipped to DENSITY_CLIP
    assert x[0, :, 5:].max() == 0 and x[0, :, :, 7:].max() == 0 and x[0, 3, :5, :7].min() == 1


def test_sigmoid_does_not_overflow() -> None:
    z = np.array([-1000.0, 0.0, 1000.0], np.float32)
    np.testing.assert_allclose(sigmoid(z), [0.0, 0.5, 1.0], atol=1e-7)


def test_shipped_model_is_small_plain_onnx_and_deterministic() -> None:
    assert SHIPPED_CNN.stat().st_size < 1_000_000  # three 65 k-weight members
    model = load_cnn()
    assert 0 < model.threshold < 1 and 0 < model.alpha < 1
    density, field, _ = net_input(srgb_to_linear(drawn_smear(seed=1)), 0.39)
    a, b = cnn_heat_map(model, density, field), cnn_heat_map(model, density, field)
    assert a.shape == field.shape and a.min() >= 0 and a.max() <= 1
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(("seed", "kw"), [(1, {}), (2, {"field_stop": True}), (4, {"tint": (0.7, 1.0, 0.8)})])
def test_finds_drawn_white_cells(seed: int, kw: dict) -> None:
    cells = find_wbcs(srgb_to_linear(drawn_smear(seed=seed, **kw)), 0.39, CNN)
    got = sorted((c.x, c.y) for c in cells)
    assert len(got) == 2, got
    for (x, y), (tx, ty) in zip(got, [(120, 150), (300, 200)], strict=True):
        assert abs(x - tx) < 12 and abs(y - ty) < 12  # within a white-cell radius (6 µm = 15 px)


def test_red_cells_alone_give_nothing_and_border_cells_are_cut() -> None:
    assert find_wbcs(srgb_to_linear(drawn_smear(seed=5, wbcs=())), 0.39, CNN) == []
    # the second cell's centre lies 4.7 µm from the right border: a third of it is outside
    cells = find_wbcs(srgb_to_linear(drawn_smear(seed=3, wbcs=((120, 150), (388, 100)))), 0.39, CNN)
    assert sorted((c.x > 300, c.cut) for c in cells) == [(False, False), (True, True)]


def test_bad_model_files_and_config(tmp_path: Path) -> None:
    with pytest.raises(TrainerError, match="not found"):
        load_cnn(str(tmp_path / "none.onnx"))
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    with pytest.raises(TrainerError, match="not a loadable ONNX model"):
        load_cnn(str(tmp_path / "junk.onnx"))
    with pytest.raises(ConfigError, match=r"wbc\.stage2"):
        WbcConfig(method="cnn", stage2="s.npz")  # the net's feature stage
    with pytest.raises(ConfigError, match=r"wbc\.stage2"):
        WbcConfig(method="net", stage2="v.onnx")  # the cnn's verifier
    assert WbcConfig(method="cnn", stage2="shipped").stage2 == "shipped"
    with pytest.raises(ConfigError, match=r"wbc\.model"):
        WbcConfig(method="cnn", model="w.npz")
