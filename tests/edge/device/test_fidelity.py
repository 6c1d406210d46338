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


def test_batched_scores_are_the_per_cell_scores_on_real_model_outputs() -> None:
    """``score_batch`` (the daemon's) == ``score`` per cell within 1e-6, on the default model's stains of
    cells detected on virtual-bench fields (with a flat patch and a faked structure added)."""
    import contextlib
    from pathlib import Path

    from edge.bench.pipeline import BenchModel, bench_config, bench_parts
    from edge.device.cell_jobs import fill_input, process_stack
    from edge.device.crops import Normalisation
    from edge.device.fidelity import score_batch
    from edge.device.stack import FieldRequest

    bundle = Path(__file__).resolve().parents[3] / "models" / "default.stainless"
    cfg = bench_config(BenchModel(bundle=str(bundle)), 8)
    with contextlib.ExitStack() as parts:
        _, camera, loaded, acq = bench_parts(cfg, parts)
        norm = Normalisation.uniform(len(loaded.spec.recipe), camera.black_level, camera.max_adu - camera.black_level)
        patch = loaded.spec.patch_size
        jobs = [j for i in range(2) for j in process_stack(acq.capture(FieldRequest("t", i, (0.0, 0.0))), cfg.qc,
                                                             cfg.detector, cfg.crops, patch).jobs]
        assert len(jobs) >= 4
        x = np.empty((len(jobs), len(norm.offset) * len(camera.colours), patch, patch), np.float32)
        for j, row in zip(jobs, x, strict=True):
            fill_input(j, norm, row)
        y = np.asarray(loaded.backend.infer(x), np.float32)
    scatter = np.stack([j.scatter for j in jobs])
    scatter[0] = 0.25  # a flat input map (rescaled to 0)
    y[1, :, 20:30, 20:30] = 0.0  # a structure the input does not show
    config = FidelityConfig(ssim_min=0.3, chi2_max=0.05)
    batched = score_batch(scatter, y, config)
    one_by_one = [score(s, o, config) for s, o in zip(scatter, y, strict=True)]
    assert [f.suspect for f in batched] == [f.suspect for f in one_by_one]
    np.testing.assert_allclose([f.ssim for f in batched], [f.ssim for f in one_by_one], rtol=0, atol=1e-6)
    np.testing.assert_allclose([f.chi2 for f in batched], [f.chi2 for f in one_by_one], rtol=0, atol=1e-6)
    assert len({round(f.ssim, 3) for f in batched}) > 1  # real, varied scores, not all one value


def test_score_batch_says_what_shapes_it_expects() -> None:
    from edge.device.fidelity import score_batch

    with pytest.raises(ValueError, match=r"scatter \(N, P, P\) and stained \(N, 3, P, P\)"):
        score_batch(np.zeros((2, 8, 8), np.float32), np.zeros((3, 3, 8, 8), np.float32), FidelityConfig())
    assert score_batch(np.zeros((0, 8, 8), np.float32), np.zeros((0, 3, 8, 8), np.float32), FidelityConfig()) == []
