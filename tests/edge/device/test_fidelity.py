from __future__ import annotations

import numpy as np
import pytest

from core.measures import chi2_distance, ssim
from edge.device.config import FidelityConfig
from edge.device.fidelity import lbp_histogram, lbp_riu2, score


def blobs(seed: int, n: int = 6, size: int = 48) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    img = np.zeros((size, size), np.float32)
    for _ in range(n):
        cx, cy, r = [*rng.uniform(8, size - 8, 2).tolist(), rng.uniform(2, 5)]
        img += np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * r * r)).astype(np.float32)
    return img / img.max()


def test_ssim_identity_and_inverse() -> None:
    a = blobs(0)
    assert ssim(a, a) == pytest.approx(1.0, abs=1e-6)
    assert ssim(a, 1 - a) < 0


def test_lbp_codes_and_chi2() -> None:
    flat = np.zeros((8, 8), np.float32)
    assert (lbp_riu2(flat) == 8).all()  # every neighbour >= centre: 8 ones, uniform
    h = lbp_histogram(blobs(1))
    assert h.sum() == pytest.approx(1.0)
    assert chi2_distance(h, h) == 0.0
    assert chi2_distance(np.array([1.0, 0]), np.array([0, 1.0])) == pytest.approx(1.0)


def test_removing_a_structure_lowers_fidelity() -> None:
    scatter = blobs(2)
    stained = np.stack([1 - scatter] * 3)  # dark where the input scatters: a faithful stain
    good = score(scatter, stained, FidelityConfig())
    erased = stained.copy()
    erased[:, scatter > 0.3] = 1.0  # structures painted over
    bad = score(scatter, erased, FidelityConfig())
    assert good.ssim > bad.ssim and good.chi2 < bad.chi2


@pytest.mark.slow
def test_calibration_separates_nucleus_removals() -> None:
    from edge.bench.simbench import calibrate_fidelity

    res = calibrate_fidelity(fields=3, size_px=192)
    assert res["chi2"]["auc"] >= 0.8


def test_calibration_on_a_model_uses_its_own_stains(capsys: pytest.CaptureFixture[str]) -> None:
    """``calibrate-fidelity --model``: thresholds from the default model's outputs, as JSON."""
    import json
    from pathlib import Path

    from edge.cli import main

    bundle = Path(__file__).resolve().parents[3] / "models" / "default.stainless"
    assert main(["calibrate-fidelity", "--model", str(bundle), "--fields", "1", "--size", "160", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    from edge.bench.simbench import SSIM_MAX_FPR

    assert res["cells"] == res["nucleus_removed"] > 0
    ssim_, chi2, both = res["ssim"], res["chi2"], res["combined"]
    assert res["config"] == {"ssim_min": ssim_["threshold"], "chi2_max": chi2["threshold"]}
    assert ssim_["fpr"] <= SSIM_MAX_FPR  # SSIM only adds flags at a low false-alarm rate (README)
    # a cell is suspect when either test flags it: at least each test's hits, at most both tests' false alarms
    # (slack: one cell, as the config's thresholds are the chosen ones rounded to 4 decimals)
    one = 1.0 / res["cells"] + 1e-9
    assert both["tpr"] >= max(ssim_["tpr"], chi2["tpr"]) - one
    assert max(ssim_["fpr"], chi2["fpr"]) - one <= both["fpr"] <= ssim_["fpr"] + chi2["fpr"] + one
