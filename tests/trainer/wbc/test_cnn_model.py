"""The CNN's network: shapes, size and the ONNX export against torch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from trainer.wbc.cnn import load_cnn, sigmoid
from trainer.wbc.cnn_hard import mean_probability
from trainer.wbc.cnn_model import IN_CHANNELS, STRIDE, WbcCnn, export_onnx
from trainer.wbc.ensemble_model import WbcEnsemble


def test_output_has_the_input_size_and_the_net_is_small() -> None:
    net = WbcCnn().eval()
    assert 20_000 <= sum(p.numel() for p in net.parameters()) <= 100_000
    with torch.no_grad():
        assert net(torch.zeros(2, IN_CHANNELS, 8 * STRIDE, 5 * STRIDE)).shape == (2, 1, 8 * STRIDE, 5 * STRIDE)


def test_onnx_export_matches_torch_at_any_size(tmp_path: Path) -> None:
    torch.manual_seed(0)
    net = WbcCnn().eval()
    export_onnx(net, tmp_path / "m.onnx", 0.42, notes="test")
    model = load_cnn(str(tmp_path / "m.onnx"))
    assert model.threshold == 0.42 and model.stride == STRIDE
    for h, w in ((64, 64), (36, 100)):
        x = np.random.default_rng(h).uniform(0, 3, (1, IN_CHANNELS, h, w)).astype(np.float32)
        got = model.session.run(["logits"], {"density": x})[0]
        with torch.no_grad():
            want = net(torch.from_numpy(x)).numpy()
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_ensemble_returns_the_logit_of_the_mean_probability(tmp_path: Path) -> None:
    torch.manual_seed(1)
    members = [WbcCnn().eval() for _ in range(2)]
    ens = WbcEnsemble(members).eval()
    x = torch.from_numpy(np.random.default_rng(0).uniform(0, 3, (1, IN_CHANNELS, 16, 24)).astype(np.float32))
    with torch.no_grad():
        want = mean_probability([m(x).numpy() for m in members])
        got = torch.sigmoid(ens(x)).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    export_onnx(ens, tmp_path / "e.onnx", 0.5)
    onnx_logits = load_cnn(str(tmp_path / "e.onnx")).session.run(["logits"], {"density": x.numpy()})[0]
    np.testing.assert_allclose(sigmoid(onnx_logits), want, rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="at least one member"):
        WbcEnsemble([])
