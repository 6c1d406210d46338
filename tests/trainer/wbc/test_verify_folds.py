"""Out-of-fold verifier scores: the folds, their file, and the rule applied to them by the ensemble tool."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from tests.support.drawn_smear import drawn_folder
from trainer.errors import TrainerError
from trainer.wbc.cnn import SHIPPED_CNN
from trainer.wbc.verify import load_verifier, verify_probability
from trainer.wbc.verify_folds import OutOfFold, Scored, kfold, load_oof, main, merge_oof, save_oof
from trainer.wbc.verify_model import WbcVerifier


def test_folds_are_disjoint_cover_the_folder_and_are_deterministic() -> None:
    images = [Path(f"/set/images/{k}.jpg") for k in range(17)]
    folds = kfold(images, 5, seed=0)
    flat = [p for f in folds for p in f]
    assert len(flat) == len(set(flat)) == 17 and set(flat) == set(images)  # disjoint, every image once
    assert sorted(len(f) for f in folds) == [3, 3, 3, 4, 4]
    assert kfold(images, 5, seed=0) == folds  # the same call, the same folds
    assert kfold(images[::-1], 5, seed=0) == folds  # whatever order the images come in
    assert kfold(images, 5, seed=1) != folds
    for bad in (1, 18):
        with pytest.raises(ValueError, match="folds"):
            kfold(images, bad, seed=0)


def _oof(seeds: list[int], scale: float = 1.0) -> OutOfFold:
    a = Scored(np.array([0.9, 0.2], np.float32), np.array([[True, False], [False, False]]), 2)
    b = Scored(np.zeros(0, np.float32), np.zeros((0, 1), bool), 1)  # a photograph without candidates
    c = Scored(np.array([0.5], np.float32), np.zeros((1, 0), bool), 0)  # and one without cells
    probs = [[np.array([[0.8, 0.1]] * len(seeds), np.float32) * scale, np.zeros((len(seeds), 0), np.float32)],
             [np.array([[0.3]] * len(seeds), np.float32) * scale]]
    return OutOfFold(["pig=auto", "chula=auto"], [True, False], [["a.jpg", "b.jpg"], ["c.jpg"]], [[a, b], [c]],
                     probs, seeds, "f" * 40)


def test_out_of_fold_file_round_trips_and_merges_seeds(tmp_path: Path) -> None:
    save_oof(tmp_path / "o.npz", _oof([0]))
    back = load_oof(tmp_path / "o.npz")
    want = _oof([0])
    assert (back.sets, back.precise, back.names, back.seeds, back.first) == (
        want.sets, want.precise, want.names, want.seeds, want.first)
    for xs, ys in zip(back.images, want.images, strict=True):
        for x, y in zip(xs, ys, strict=True):
            np.testing.assert_array_equal(x.s1, y.s1)
            np.testing.assert_array_equal(x.hits, y.hits)
            assert x.boxes == y.boxes
    both = merge_oof([back, _oof([1], scale=0.5)])
    assert both.seeds == [0, 1] and both.probs[0][0].shape == (2, 2)
    np.testing.assert_allclose(both.mean()[0][0], [0.6, 0.075])
    np.testing.assert_allclose(both.only([1]).mean()[0][0], [0.4, 0.05])
    with pytest.raises(TrainerError, match="missing"):
        both.only([2])
    other = _oof([2])
    other.names[0][0] = "z.jpg"
    with pytest.raises(TrainerError, match="same --set list"):
        merge_oof([back, other])
    with pytest.raises(TrainerError, match=r"trainer\.wbc\.verify_folds"):
        load_oof(tmp_path / "missing.npz")


def test_folds_then_ensemble_choose_on_every_photograph(tmp_path: Path) -> None:
    from trainer.wbc import verify_ensemble, verify_train

    folder = drawn_folder(tmp_path / "set", n=4)
    spec, first = f"{folder}=0.39", str(SHIPPED_CNN)
    common = ["--set", spec, "--negatives", "set", "--first", first]
    small = ["--steps", "2", "--versions", "1", "--batch", "4"]
    assert main([*common, *small, "--out", str(tmp_path / "o.npz"), "--seed", "0", "--seed", "1", "--folds", "2"]) == 0
    oof = load_oof(tmp_path / "o.npz")
    assert oof.seeds == [0, 1] and sorted(oof.names[0]) == ["s0.png", "s1.png", "s2.png", "s3.png"]
    for p, im in zip(oof.probs[0], oof.images[0], strict=True):
        assert p.shape == (2, len(im.s1)) and len(im.s1) >= 2 and p.min() >= 0 and p.max() <= 1
    assert verify_train.main([*common, *small, "--out", str(tmp_path / "v.onnx"), "--holdout", "0.5"]) == 0
    assert verify_ensemble.main([*common, "--member", str(tmp_path / "v.pt"), "--out", str(tmp_path / "e.onnx"),
                                     "--oof", str(tmp_path / "o.npz"), "--oof-seed", "0"]) == 0
    notes = load_verifier(str(tmp_path / "e.onnx")).session.get_modelmeta().custom_metadata_map["notes"]
    assert "out-of-fold scores o.npz, seeds [0]" in notes
    # one member is written as the network itself, so the result can be a member again (same weights)
    again = verify_ensemble.load_member(tmp_path / "e.onnx", WbcVerifier,
                                            "trainer.wbc.verify_train")
    want = torch.load(tmp_path / "v.pt", weights_only=True)
    assert all(torch.equal(again.state_dict()[k], want[k]) for k in want)
    with pytest.raises(TrainerError, match="one out-of-fold seed per member"):
        verify_ensemble.main([*common, "--member", str(tmp_path / "v.pt"), "--out", str(tmp_path / "x.onnx"),
                                  "--oof", str(tmp_path / "o.npz")])
    with pytest.raises(TrainerError, match="same --set list and --first"):
        verify_ensemble.main(["--set", spec, "--negatives", "set", "--first", str(tmp_path / "v.onnx"),
                                  "--member", str(tmp_path / "v.pt"), "--out", str(tmp_path / "x.onnx"),
                                  "--oof", str(tmp_path / "o.npz"), "--oof-seed", "0"])


def test_saved_fold_models_score_again_without_training_and_with_tta(tmp_path: Path) -> None:
    folder = drawn_folder(tmp_path / "set", n=4)
    common = ["--set", f"{folder}=0.39", "--negatives", "set", "--first", str(SHIPPED_CNN), "--folds", "2",
              "--steps", "2", "--versions", "1", "--batch", "4"]
    models = tmp_path / "models"
    assert main([*common, "--out", str(tmp_path / "a.npz"), "--save-models", str(models)]) == 0
    assert sorted(p.name for p in models.iterdir()) == ["seed0-fold0.pt", "seed0-fold1.pt"]
    assert main([*common, "--out", str(tmp_path / "b.npz"), "--load-models", str(models)]) == 0
    assert main([*common, "--out", str(tmp_path / "t.npz"), "--load-models", str(models), "--tta"]) == 0
    a, b, t = (load_oof(tmp_path / n) for n in ("a.npz", "b.npz", "t.npz"))
    assert a.names == b.names == t.names
    for pa, pb, pt in zip(a.probs[0], b.probs[0], t.probs[0], strict=True):
        np.testing.assert_array_equal(pa, pb)  # the same fold models score the same crops
        assert pt.shape == pa.shape and ((pt >= 0) & (pt <= 1)).all()
    assert any(not np.allclose(pa, pt, atol=1e-6) for pa, pt in zip(a.probs[0], t.probs[0], strict=True))
    with pytest.raises(TrainerError, match="not found"):
        main([*common, "--out", str(tmp_path / "c.npz"), "--load-models", str(tmp_path / "none")])
    from trainer.wbc import verify_ensemble  # the TTA scores choose the operating point of a TTA graph

    assert verify_ensemble.main([*common[:6], "--member", str(models / "seed0-fold0.pt"), "--tta",
                                     "--out", str(tmp_path / "t.onnx"), "--oof", str(tmp_path / "t.npz")]) == 0
    v = load_verifier(str(tmp_path / "t.onnx"))
    assert "8-view TTA" in v.session.get_modelmeta().custom_metadata_map["notes"]
    x = np.random.default_rng(0).uniform(0, 3, (3, 4, 80, 80)).astype(np.float32)
    np.testing.assert_allclose(verify_probability(v, np.ascontiguousarray(np.rot90(x, 1, axes=(2, 3)))),
                               verify_probability(v, x), rtol=1e-4, atol=1e-5)  # a turned crop scores the same


def test_only_fold_scores_that_fold_alike_and_hard_gain_trains(tmp_path: Path) -> None:
    folder = drawn_folder(tmp_path / "set", n=4)
    common = ["--set", f"{folder}=0.39", "--negatives", "set", "--first", str(SHIPPED_CNN), "--folds", "2",
              "--steps", "2", "--versions", "1", "--batch", "4"]
    models = tmp_path / "models"
    assert main([*common, "--out", str(tmp_path / "a.npz"), "--save-models", str(models), "--hard-gain", "3"]) == 0
    assert main([*common, "--out", str(tmp_path / "b.npz"), "--load-models", str(models), "--only-fold", "1"]) == 0
    a, b = load_oof(tmp_path / "a.npz"), load_oof(tmp_path / "b.npz")
    assert len(b.names[0]) == 2 and b.names[0] == a.names[0][2:]  # fold 1's photographs, in the same order
    for pa, pb in zip(a.probs[0][2:], b.probs[0], strict=True):
        np.testing.assert_array_equal(pa, pb)
    with pytest.raises(TrainerError, match=r"--only-fold in 0\.\.1"):
        main([*common, "--out", str(tmp_path / "c.npz"), "--load-models", str(models), "--only-fold", "2"])
    with pytest.raises(ValueError, match="either --balance or --hard-gain"):
        main([*common, "--out", str(tmp_path / "d.npz"), "--balance", "--hard-gain", "2"])
