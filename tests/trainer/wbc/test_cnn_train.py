"""Training the convolutional finder: targets, crops, the view cache and a small end-to-end run."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.support.drawn_smear import drawn_folder
from trainer.errors import TrainerError
from trainer.wbc.cnn import cnn_centres, load_cnn
from trainer.wbc.cnn_ensemble import main as ensemble_main
from trainer.wbc.cnn_train import View, cached_views, crop, main, target


def test_target_peaks_at_the_centres() -> None:
    t = target(20, 30, np.array([[5, 6, 10], [25, 15, 4]], np.float32))
    assert t[6, 5] == pytest.approx(1.0) and t[15, 25] == pytest.approx(1.0)
    assert t[0, 29] < 1e-3 and t.max() <= 1.0


def test_crop_pads_outside_the_image_and_ignores_the_border_band() -> None:
    h, w = 40, 50
    empty = View(np.ones((3, h, w), np.float16), np.ones((h, w), bool), np.zeros((0, 3), np.float32))
    rng = np.random.default_rng(0)
    for _ in range(10):
        x, t, wt = crop(empty, 64, rng)  # larger than the image and no cell: the whole image, padded
        assert x.shape == (4, 64, 64) and t.shape == wt.shape == (64, 64) and t.max() == 0
        assert x[3].sum() == h * w  # turned or flipped, with its field
        assert wt.sum() == (h - 12) * (w - 12)  # inside, minus the 6 µm band along the border
        assert (wt[x[3] == 0] == 0).all()
    cell = View(empty.density, empty.field, np.array([[25, 20, 12]], np.float32))
    for _ in range(10):
        x, t, wt = crop(cell, 32, rng)
        if t.max() > 0.99:  # the crop holds the cell's centre (most do): it counts in the loss
            assert wt[np.unravel_index(t.argmax(), t.shape)] == 1


def test_view_cache_round_trips(tmp_path: Path) -> None:
    folder = drawn_folder(tmp_path / "set", n=1)
    image = folder / "images" / "s0.png"
    first = cached_views(image, 0.39, 2, 0, tmp_path / "cache")
    again = cached_views(image, 0.39, 2, 0, tmp_path / "cache")
    assert len(list((tmp_path / "cache").iterdir())) == 1 and len(first) == 2
    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(a.density, b.density)
        np.testing.assert_array_equal(a.centres, b.centres)
    assert not np.array_equal(first[0].density, first[1].density)  # the second view is jittered
    assert first[0].centres.shape == (2, 3)
    faded = cached_views(image, 0.39, 2, 0, tmp_path / "cache", fade=0.9)  # its own cache entry
    assert len(list((tmp_path / "cache").iterdir())) == 2
    np.testing.assert_array_equal(faded[0].density, first[0].density)  # the photograph itself is never jittered
    with pytest.raises(SystemExit):
        main(["--set", f"{folder}=0.39", "--out", str(tmp_path / "w.onnx"), "--fade", "2"])


def test_a_short_training_run_writes_a_usable_model(tmp_path: Path) -> None:
    folder = drawn_folder(tmp_path / "set")
    out = tmp_path / "w.onnx"
    assert main(["--set", f"{folder}=0.39", "--out", str(out), "--steps", "3", "--versions", "2",
                 "--holdout", "0.34", "--threads", "1"]) == 0
    model = load_cnn(str(out))
    assert 0.1 <= model.threshold <= 0.9
    rgb = cv2.imread(str(folder / "images" / "s0.png"))[..., ::-1]
    cells = cnn_centres(np.moveaxis(rgb, -1, 0).astype(np.float32) / 255, 0.39, 0.0, str(out))
    assert all(len(c) == 4 for c in cells)


def test_crop_weighs_hard_negatives_up_or_ignores_them() -> None:
    h, w = 40, 50
    neg = np.array([[25, 20]], np.float32)
    view = View(np.ones((3, h, w), np.float16), np.ones((h, w), bool), np.zeros((0, 3), np.float32), neg)
    rng = np.random.default_rng(0)
    for gain, want in ((4.0, 5.0), (-1.0, 0.0), (0.0, 1.0)):
        _, _, wt = crop(view, 64, rng, gain)  # the whole image: the negative's peak weight is in it
        assert wt.max() == pytest.approx(max(want, 1.0)) and wt.min() == 0
        if gain < 0:
            assert (wt == 0).sum() > (64 * 64 - (h - 12) * (w - 12))  # more zeros than padding and band


def test_mining_trains_on_hard_negatives_and_members_join_an_ensemble(tmp_path: Path) -> None:
    folder = drawn_folder(tmp_path / "set")
    first, second = tmp_path / "a.onnx", tmp_path / "b.onnx"
    common = ["--set", f"{folder}=0.39", "--steps", "2", "--versions", "1", "--holdout", "0.34", "--threads", "1"]
    assert main([*common, "--out", str(first)]) == 0
    assert main([*common, "--out", str(second), "--seed", "1", "--mine", str(first), "--mine-threshold", "0.0",
                 "--rule", "recall"]) == 0
    assert first.with_suffix(".pt").is_file() and second.with_suffix(".pt").is_file()
    ens = tmp_path / "e.onnx"
    assert ensemble_main(["--member", str(first.with_suffix(".pt")), "--member", str(second.with_suffix(".pt")),
                          "--set", f"{folder}=0.39", "--holdout", "0.34", "--out", str(ens), "--threads", "1"]) == 0
    model = load_cnn(str(ens))
    assert 0.1 <= model.threshold <= 0.9 and 0.3 <= model.alpha < 1
    assert ens.stat().st_size > 1.8 * first.stat().st_size  # both members' weights
    with pytest.raises(TrainerError, match="not found"):
        ensemble_main(["--member", str(tmp_path / "none.pt"), "--set", f"{folder}=0.39", "--out", str(ens)])
