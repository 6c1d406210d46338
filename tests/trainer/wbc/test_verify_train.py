"""Training the verifier: harvested crops, their cache, and a small end-to-end run."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.support.drawn_smear import drawn_folder
from trainer.wbc.cnn import SHIPPED_CNN, cnn_centres
from trainer.wbc.verify import CROP_PX, load_verifier
from trainer.wbc.verify_data import SHIFT_PX, harvest
from trainer.wbc.verify_train import augment, folder_harvest, main


def test_harvest_has_every_labelled_cell_per_version_and_negatives_only_where_asked(tmp_path: Path) -> None:
    image = drawn_folder(tmp_path / "set", n=1) / "images" / "s0.png"
    with_neg = harvest(image, 0.39, 2, 0, [str(SHIPPED_CNN)], negatives=True)
    without = harvest(image, 0.39, 2, 0, [str(SHIPPED_CNN)], negatives=False)
    side = CROP_PX + 2 * SHIFT_PX
    assert with_neg.x.shape[1:] == (4, side, side) and with_neg.x.dtype == np.float16
    assert with_neg.y.sum() >= 4 and without.y.min() == 1  # two boxed cells x two versions, at least
    assert with_neg.y.sum() == without.y.sum()  # the same positives either way


def test_folder_harvest_cache_round_trips(tmp_path: Path) -> None:
    images = sorted((drawn_folder(tmp_path / "set", n=1) / "images").iterdir())
    a = folder_harvest(images, 0.39, 1, 0, [str(SHIPPED_CNN)], True, tmp_path / "cache")
    b = folder_harvest(images, 0.39, 1, 0, [str(SHIPPED_CNN)], True, tmp_path / "cache")
    assert len(list((tmp_path / "cache").iterdir())) == 1
    np.testing.assert_array_equal(a.x, b.x)
    np.testing.assert_array_equal(a.y, b.y)


def test_augment_cuts_a_turned_window() -> None:
    x = np.zeros((4, CROP_PX + 2 * SHIFT_PX, CROP_PX + 2 * SHIFT_PX), np.float16)
    x[:, SHIFT_PX + CROP_PX // 2, SHIFT_PX + CROP_PX // 2] = 1
    rng = np.random.default_rng(0)
    for _ in range(8):
        out = augment(x, rng)
        assert out.shape == (4, CROP_PX, CROP_PX) and out.dtype == np.float32 and out.sum() == 4  # shift ≤ 4 px


def test_a_short_training_run_writes_a_usable_verifier(tmp_path: Path) -> None:
    folder = drawn_folder(tmp_path / "set")
    out = tmp_path / "v.onnx"
    assert main(["--set", f"{folder}=0.39", "--negatives", "set", "--out", str(out), "--steps", "3",
                 "--versions", "2", "--holdout", "0.34", "--batch", "8", "--harvest-from", str(SHIPPED_CNN)]) == 0
    v = load_verifier(str(out))
    assert v.candidate_threshold == 0.1 and 0 <= v.weight <= 1 and 0 < v.threshold < 1
    assert out.with_suffix(".pt").is_file()
    assert "crops from wbc_cnn.onnx" in v.session.get_modelmeta().custom_metadata_map["notes"]
    rgb = cv2.imread(str(folder / "images" / "s0.png"))[..., ::-1]
    cells = cnn_centres(np.moveaxis(rgb, -1, 0).astype(np.float32) / 255, 0.39, None, "", str(out))
    assert all(len(c) == 4 for c in cells)


def test_harvest_from_several_proposers_takes_their_union(tmp_path: Path) -> None:
    from trainer.wbc.net import SHIPPED
    from trainer.wbc.verify_data import proposer_heat

    image = drawn_folder(tmp_path / "set", n=1) / "images" / "s0.png"
    cnn = harvest(image, 0.39, 1, 0, [str(SHIPPED_CNN)], negatives=True)
    net = harvest(image, 0.39, 1, 0, [str(SHIPPED)], negatives=True)
    both = harvest(image, 0.39, 1, 0, [str(SHIPPED_CNN), str(SHIPPED)], negatives=True)
    assert max(len(cnn.y), len(net.y)) <= len(both.y) <= len(cnn.y) + len(net.y) - 2  # labelled centres once
    assert both.y.sum() >= cnn.y.sum() and (1 - both.y).sum() >= (1 - cnn.y).sum()  # nothing of the cnn's lost
    np.testing.assert_array_equal(both.x[:2], cnn.x[:2])  # the labelled centres come first, unchanged
    with pytest.raises(ValueError, match=r"cnn \.onnx or a net \.npz"):
        proposer_heat(None, "w.pt")  # type: ignore[arg-type]


def test_balanced_draw_takes_cells_and_non_cells_equally_often() -> None:
    from trainer.wbc.verify_data import Harvest
    from trainer.wbc.verify_train import draw

    g = Harvest(np.zeros((100, 1, 1, 1), np.float16), np.r_[np.ones(10), np.zeros(90)].astype(np.float32))
    rng = np.random.default_rng(0)
    share = np.mean([g.y[draw(g, rng, True)] for _ in range(4000)])
    assert abs(share - 0.5) < 0.04
    assert abs(np.mean([g.y[draw(g, rng, False)] for _ in range(4000)]) - 0.1) < 0.03  # as harvested
    only = Harvest(g.x[:10], g.y[:10])  # cells only (chula): balance leaves it uniform
    assert all(0 <= draw(only, rng, True) < 10 for _ in range(50))


def test_wider_verifier_trained_under_bf16_is_written_and_read_back_at_its_widths(tmp_path: Path) -> None:
    import torch

    from trainer.wbc.ensemble_model import load_member
    from trainer.wbc.verify_model import WbcVerifier

    folder = drawn_folder(tmp_path / "set")
    out = tmp_path / "v.onnx"
    assert main(["--set", f"{folder}=0.39", "--negatives", "set", "--out", str(out), "--steps", "2", "--versions", "1",
                 "--holdout", "0.34", "--batch", "4", "--widths", "8,12,16,20", "--bf16"]) == 0
    net = load_member(out.with_suffix(".pt"), WbcVerifier, "trainer.wbc.verify_train")
    assert net.s3[0][0].out_channels == 20 and net.head.in_features == 40
    assert all(p.dtype == torch.float32 for p in net.parameters())  # autocast leaves the weights in fp32
    assert "widths 8,12,16,20, bf16" in load_verifier(str(out)).session.get_modelmeta().custom_metadata_map["notes"]
    with pytest.raises(SystemExit):
        main(["--set", f"{folder}=0.39", "--negatives", "set", "--out", str(out), "--widths", "8,12"])
