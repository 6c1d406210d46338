"""The stress bench: perturbed copies of labelled photographs through the photo bench."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from bench.wbc_photos import evaluate_image
from bench.wbc_stress import PERTURBATIONS, main
from tests.support.drawn_smear import drawn_folder, drawn_smear
from trainer.data.config import WbcConfig


def test_perturbations_keep_an_8bit_rgb_photograph() -> None:
    img = drawn_smear(seed=0)
    for name, f in PERTURBATIONS.items():
        if f is None:
            continue
        out = f(img)
        assert out.dtype == np.uint8 and out.shape[0] == 3, name
        scale = {"half-size": 0.5, "double-size": 2.0}.get(name, 1.0)
        assert out.shape[1:] == (round(300 * scale), round(400 * scale)), name
        if scale == 1.0:
            assert not np.array_equal(out, img), name  # every perturbation changes something
    hsv_half = PERTURBATIONS["saturation-0.5"](img).astype(float)
    assert np.ptp(hsv_half, axis=0).mean() < 0.7 * np.ptp(img.astype(float), axis=0).mean()  # greyer


def test_boxes_follow_a_change_of_size(tmp_path: Path) -> None:
    folder = drawn_folder(tmp_path / "lab", n=1)
    path = folder / "images" / "s0.png"
    cfg = WbcConfig(method="stain")
    plain = evaluate_image(path, cfg, 0.39, 5.0)
    double = evaluate_image(path, cfg, 0.39 / 2, 5.0, PERTURBATIONS["double-size"])
    assert [b.x0 * 2 for b in plain["boxes"]] == pytest.approx([b.x0 for b in double["boxes"]])
    assert all(double["found"]) and all(plain["found"])


def test_stress_table_and_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    drawn_folder(tmp_path / "lab", n=2)
    assert main(["--data", str(tmp_path), "--perturb", "dark,half-size", "--method", "stain", "--baseline", "od",
                 "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["finders"] == ["stain", "od"] and list(report["perturbations"]) == ["none", "dark", "half-size"]
    none = report["perturbations"]["none"]["stain"]
    assert none["relative"] == 1.0 and none["sets"]["lab"]["recall"] == 1.0
    dark = report["perturbations"]["dark"]["stain"]
    assert dark["relative"] == pytest.approx(dark["mean_f1"] / none["mean_f1"], abs=0.002)
    assert main(["--data", str(tmp_path), "--perturb", "none", "--method", "stain", "--baseline", "od"]) == 0
    assert "F1 per set, stain (od)" in capsys.readouterr().out
    assert main(["--data", str(tmp_path), "--perturb", "sepia"]) == 2
    assert "expected --perturb all or names" in capsys.readouterr().err
    assert main(["--data", str(tmp_path), "--method", "od", "--baseline", "od"]) == 2
    assert "both od" in capsys.readouterr().err
