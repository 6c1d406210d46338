"""Seed ensembles: one ONNX graph whose probability is the mean of its members', for either network."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from tests.support.drawn_smear import drawn_folder
from trainer.errors import TrainerError
from trainer.wbc.cnn import SHIPPED_CNN
from trainer.wbc.ensemble_model import WbcEnsemble, load_member
from trainer.wbc.verify import load_verifier, verify_probability
from trainer.wbc.verify_data import tuning_record
from trainer.wbc.verify_model import WbcVerifier, export_verifier


def test_verifier_ensemble_outputs_the_mean_of_its_members_on_real_crops(tmp_path: Path) -> None:
    image = drawn_folder(tmp_path / "set", n=1) / "images" / "s0.png"
    crops = tuning_record(image, 0.39, str(SHIPPED_CNN), 0.1).x  # the candidates a real run would verify
    assert len(crops) >= 2
    torch.manual_seed(3)
    members = [WbcVerifier().eval() for _ in range(3)]
    for k, m in enumerate(members):
        export_verifier(m, tmp_path / f"m{k}.onnx", 1.0, 0.5, 0.1)
    export_verifier(WbcEnsemble(members).eval(), tmp_path / "e.onnx", 1.0, 0.5, 0.1)
    each = [verify_probability(load_verifier(str(tmp_path / f"m{k}.onnx")), crops) for k in range(3)]
    got = verify_probability(load_verifier(str(tmp_path / "e.onnx")), crops)
    assert got.shape == (len(crops),) and np.ptp(np.stack(each), axis=0).max() > 1e-3  # members differ
    np.testing.assert_allclose(got, np.mean(each, axis=0), rtol=1e-4, atol=1e-5)


def test_load_member_reads_a_state_dict_and_refuses_another_network(tmp_path: Path) -> None:
    torch.manual_seed(0)
    net = WbcVerifier()
    torch.save(net.state_dict(), tmp_path / "v.pt")
    loaded = load_member(tmp_path / "v.pt", WbcVerifier, "trainer.wbc.verify_train")
    assert not loaded.training
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), net.state_dict().values(), strict=True))
    with pytest.raises(TrainerError, match=r"not found; train it with python -m trainer\.wbc\.verify_train"):
        load_member(tmp_path / "missing.pt", WbcVerifier, "trainer.wbc.verify_train")
    from trainer.wbc.cnn_model import WbcCnn

    with pytest.raises(TrainerError, match="expected a WbcCnn state dict"):
        load_member(tmp_path / "v.pt", WbcCnn, "trainer.wbc.cnn_train")
    with pytest.raises(ValueError, match="at least one member"):
        WbcEnsemble([])


def test_load_member_builds_the_network_the_state_dict_was_trained_as(tmp_path: Path) -> None:
    from trainer.wbc.cnn_model import WbcCnn

    torch.manual_seed(0)
    for net, kind in ((WbcVerifier((8, 12, 16, 20)), WbcVerifier), (WbcCnn((8, 12, 20)), WbcCnn)):
        torch.save(net.state_dict(), tmp_path / "n.pt")
        loaded = load_member(tmp_path / "n.pt", kind, "trainer")
        assert type(loaded) is type(net)
        assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), net.state_dict().values(),
                                                       strict=True))


def test_load_member_reads_the_shipped_verifier_onnx_and_scores_as_it_does(tmp_path: Path) -> None:
    from trainer.wbc.verify import SHIPPED_VERIFY
    from trainer.wbc.verify_train import probabilities

    image = drawn_folder(tmp_path / "set", n=1) / "images" / "s0.png"
    real = tuning_record(image, 0.39, str(SHIPPED_CNN), 0.1).x  # both drawn cells: scores near 1
    noise = np.random.default_rng(0).uniform(0, 3, (2, *real.shape[1:])).astype(np.float32)  # and lower
    crops = np.concatenate([real, noise])
    net = load_member(SHIPPED_VERIFY, WbcVerifier, "trainer.wbc.verify_train")
    want = verify_probability(load_verifier(str(SHIPPED_VERIFY)), crops)
    assert np.ptp(want) > 1e-3  # the crops score differently, so equal outputs mean equal weights
    np.testing.assert_allclose(probabilities(net, crops), want, rtol=1e-4, atol=1e-5)
    torch.manual_seed(0)
    export_verifier(WbcEnsemble([WbcVerifier(), WbcVerifier()]), tmp_path / "e.onnx", 1.0, 0.5, 0.1)
    with pytest.raises(TrainerError, match=r"single-network \.onnx"):  # an ensemble's names are not one network's
        load_member(tmp_path / "e.onnx", WbcVerifier, "trainer.wbc.verify_train")


def test_tta_outputs_the_mean_over_the_eight_flips_and_turns_on_real_crops(tmp_path: Path) -> None:
    from trainer.wbc.ensemble_model import WbcTta

    image = drawn_folder(tmp_path / "set", n=1) / "images" / "s0.png"
    real = tuning_record(image, 0.39, str(SHIPPED_CNN), 0.1).x  # the candidates a real run would verify
    crops = np.concatenate([real, np.ascontiguousarray(real[:, :, ::-1, :] * 0.7)])  # and a fainter, flipped copy
    torch.manual_seed(5)
    net = WbcVerifier().eval()  # untrained: not symmetric, so the 8 views score differently
    with torch.no_grad():
        net.head.weight.mul_(300.0)  # and spread its probabilities away from 0.5
    export_verifier(net, tmp_path / "one.onnx", 1.0, 0.5, 0.1)
    export_verifier(WbcTta(net).eval(), tmp_path / "tta.onnx", 1.0, 0.5, 0.1)
    one = load_verifier(str(tmp_path / "one.onnx"))
    views = [np.rot90(c, k, axes=(2, 3)) for c in (crops, crops[:, :, :, ::-1]) for k in range(4)]  # numpy's own
    each = np.stack([verify_probability(one, np.ascontiguousarray(v)) for v in views])
    assert np.ptp(each, axis=0).max() > 1e-3  # the views do differ
    got = verify_probability(load_verifier(str(tmp_path / "tta.onnx")), crops)
    np.testing.assert_allclose(got, each.mean(axis=0), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(verify_probability(load_verifier(str(tmp_path / "tta.onnx")), crops[:, :, ::-1]),
                               got, rtol=1e-4, atol=1e-5)  # and a flipped crop scores the same
