"""docs/results/render.py: the verdicts it prints follow the numbers it is given."""

from __future__ import annotations

from pathlib import Path

from tests.support.scripts import load_script

ROOT = Path(__file__).resolve().parents[2]
render = load_script("docs/results/render.py")


def _row(recipe: str, ssim: float, iou: float, std: float = 0.002, generator: str = "rrdb") -> dict:
    return {"generator": generator, "recipe": recipe, "seeds": 2, "ssim": ssim, "ssim_std": std,
            "nucleus_iou": iou, "nucleus_iou_std": std}


def test_a_recipe_holds_only_when_both_gaps_exceed_the_spread() -> None:
    rows = [_row("brightfield", 0.80, 0.80), _row("full-nohe", 0.83, 0.83), _row("le8", 0.83, 0.801)]
    lines = {line.split("`")[1]: line for line in render.findings(rows)}
    assert lines["full-nohe"].endswith("help holds.")
    assert "does not hold" in lines["le8"]  # SSIM ahead, nucleus IoU within the spread


def test_distillation_verdict_needs_both_the_flop_and_the_ssim_budget() -> None:
    def row(name: str, ssim_drop: float, frac: float) -> dict:
        return {"model": name, "recipe": "full-nohe", "gflop_per_cell": frac, "flop_fraction": frac,
                "ms_per_cell": 1.0, "ssim": 0.8 - ssim_drop, "ssim_drop": ssim_drop, "nucleus_iou": 0.8,
                "flagged_rate": 0.1}

    teacher = row("teacher", 0.0, 1.0)
    met = render.distill_section([teacher, row("small", 0.004, 0.2), row("cheap-bad", 0.02, 0.1),
                                  row("good-big", 0.0, 0.5)], "cmd")
    assert any("met by small." in line for line in met)
    missed = render.distill_section([teacher, row("cheap-bad", 0.02, 0.1), row("good-big", 0.0, 0.5)], "cmd")
    assert any("not met by any student" in line for line in missed)
    assert render.distill_section(None, "cmd")[-2] == "Not run yet."


def test_a_recipe_short_of_brightfield_is_reported_with_its_longer_run() -> None:
    five = [_row("brightfield", 0.80, 0.80), _row("le8", 0.799, 0.81), _row("full-nohe", 0.85, 0.85)]
    alone = render.not_reproduced(five)
    assert len(alone) == 1 and "`le8` does not beat" in alone[0] and "full-nohe" not in alone[0]
    fixed = render.not_reproduced(five, [("Longer", [_row("brightfield", 0.80, 0.80), _row("le8", 0.82, 0.83)])])
    assert "Longer: `le8` does." in fixed[0]
    still = render.not_reproduced(five, [("Longer", [_row("brightfield", 0.80, 0.80), _row("le8", 0.801, 0.83)])])
    assert "Longer: `le8` does not either." in still[0]
    assert render.not_reproduced(five, [("Longer", None)]) == alone
    assert render.not_reproduced(five[:1] + five[2:]) == []


def test_every_retest_reports_its_own_verdict() -> None:
    five = [_row("brightfield", 0.80, 0.80), _row("le8", 0.799, 0.81)]
    line = render.not_reproduced(five, [("12 epochs", [_row("brightfield", 0.80, 0.80), _row("le8", 0.80, 0.80)]),
                                        ("100x", [_row("brightfield", 0.70, 0.60), _row("le8", 0.75, 0.66)])])[0]
    assert "12 epochs: `le8` does not either." in line and "100x: `le8` does." in line
    other = render.not_reproduced(five, [("100x", [_row("brightfield", 0.70, 0.60), _row("le8", 0.70, 0.66),
                                                   _row("le18", 0.65, 0.70)])])[0]
    assert "100x: `le8` does not either; also short there: `le18`." in other


def test_loss_section_on_another_target_names_its_runs_and_skips_the_default_model() -> None:
    def ev(ssim: float) -> dict:
        return {"ssim": ssim, "mae": 0.04, "fourier": 0.01, "nucleus_iou": 0.6, "added_per_cell": 0.2,
                "removed_per_cell": 0.1}

    lines = render.losses_section({"maePFNET": ev(0.84), "maePF-RpGAN-SN": ev(0.85)}, None, "## On 100x", "-hr",
                                  "out/results/data-hr.zarr")
    text = "\n".join(lines)
    assert lines[0] == "## On 100x" and "loss-<preset>-hr.toml" in text and "out/results/data-hr.zarr" in text
    assert "SSIM +0.0100" in text and "added / removed per cell +0.00 / +0.00" in text
    assert "twice the training of the other rows." in text
    assert "shipped default model" not in text


def test_probe_table_has_a_column_per_dataset_and_target() -> None:
    def row(recipe: str, dataset: str, target: str, mae: float) -> dict:
        return {"recipe": recipe, "dataset": dataset, "target": target, "features": 27, "test_mae": mae}

    rows = [row("brightfield", "data-hr.zarr", "20x", 0.07), row("brightfield", "data-hr.zarr", "hr", 0.06),
            row("brightfield", "data-focus.zarr", "20x", 0.08), row("le8", "data-focus.zarr", "20x", 0.075)]
    lines = render.probe_section(rows)
    header = next(line for line in lines if line.startswith("| recipe"))
    assert header.count("test MAE") == 3 and "100x target, `data-hr.zarr`" in header
    assert "| `brightfield` | 27 | 0.0700 | 0.0600 | 0.0800 |" in lines
    assert "| `le8` | 27 |  |  | 0.0750 |" in lines


def test_the_led_extent_measurement_is_quoted_with_its_range() -> None:
    five = [_row("brightfield", 0.80, 0.80), _row("le8", 0.799, 0.81)]
    extent = {"recipe": "le8", "band_nm": 20.0, "die_mm": 0.3,
              "rows": [{"band_fraction": 0.073, "die_fraction": 0.047},
                       {"band_fraction": 0.077, "die_fraction": 0.044}]}
    line = render.not_reproduced(five, [], extent)[0]
    assert "a 20 nm band and a 0.3 mm die would change the `le8` images by 7.3%–7.7% and 4.4%–4.7%" in line
    assert "led_extent" not in render.not_reproduced(five)[0]


def test_the_recalibrated_table_names_the_findings_that_moved() -> None:
    before = [_row("brightfield", 0.80, 0.80), _row("le8", 0.801, 0.81), _row("full-nohe", 0.85, 0.85)]
    after = [_row("brightfield", 0.80, 0.80), _row("le8", 0.82, 0.83), _row("full-nohe", 0.86, 0.86)]
    for r in after:
        r["flagged_rate"] = 0.2
    lines = render.recalibrated_section([("in focus", before, after)])
    le8 = next(line for line in lines if line.startswith("| `le8`"))
    assert "+0.0010 (SSIM within the spread) → +0.0200 (holds)" in le8
    assert any(line.startswith("Findings that moved") and "`le8`" in line and "full-nohe" not in line
               for line in lines)
    same = render.recalibrated_section([("in focus", after, after)])
    assert any("none; every verdict held" in line for line in same)


def test_the_recalibrated_losses_and_probe_are_tabled_before_and_now() -> None:
    metrics = {"ssim": 0.87, "mae": 0.04, "fourier": 0.02, "nucleus_iou": 0.87, "added_per_cell": 0.2,
               "removed_per_cell": 0.08}
    lines = render.recalibrated_losses({"maeNET": metrics, "maePFNET": metrics},
                                       {"maePFNET": {**metrics, "ssim": 0.88}, "maeNET": metrics})
    rows = [line for line in lines if line.startswith("| mae")]
    assert rows[0].startswith("| maeNET | 0.8700 → 0.8700") and rows[1].startswith("| maePFNET | 0.8700 → 0.8800")
    assert render.recalibrated_losses({"maeNET": metrics}, {}) == []
    before = [{"recipe": "le8", "target": "20x", "dataset": "d.zarr", "test_mae": 0.078}]
    after = [{"recipe": "le8", "target": "20x", "dataset": "d.zarr", "test_mae": 0.083},
             {"recipe": "full-nohe", "target": "20x", "dataset": "d.zarr", "test_mae": 0.055}]
    probe = render.recalibrated_probe(before, after)
    assert "| `le8` | 0.0780 → 0.0830 |" in probe and "| `full-nohe` | — → 0.0550 |" in probe
    undated = [{"recipe": "le8", "target": "20x", "test_mae": 0.079}]  # an older run: no dataset recorded
    assert "| `le8` | 0.0790 → 0.0830 |" in render.recalibrated_probe(undated, after)


def test_the_shipped_models_are_tabled_in_the_order_given() -> None:
    m = {"gflop_per_cell": 24.796, "epoch": 12, "ssim": 0.92657, "psnr": 26.96, "mae": 0.03, "nucleus_iou": 0.9187,
         "added_per_cell": 0.053, "removed_per_cell": 0.089, "flagged_rate": 0.1289}
    lines = render.shipped_section([("seed size", m), ("small", {**m, "gflop_per_cell": 0.5651, "ssim": 0.8953})])
    rows = [line for line in lines if line.startswith("| seed size") or line.startswith("| small")]
    assert rows == ["| seed size | 24.80 | 12 | 0.9266 | 27.0 | 0.0300 | 0.919 | 0.05 / 0.09 | 0.129 |",
                    "| small | 0.57 | 12 | 0.8953 | 27.0 | 0.0300 | 0.919 | 0.05 / 0.09 | 0.129 |"]
    assert render.shipped_section([]) == []
