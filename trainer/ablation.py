"""``stainless-train ablation``: one model per stack recipe (and seed) at the same budget — seed Table 4.1.

Every run uses the base config with only ``data.recipe``, ``train.seed`` and ``train.out`` changed
(a sub-recipe of the captured one), then :func:`trainer.evaluate.evaluate` measures its best
checkpoint on the test split. The table gives, per recipe, the mean and the seed-to-seed standard
deviation of SSIM, MAE, nucleus IoU and the flagged rate. With ``resume`` a run whose folder already
holds a ``last.pt`` continues from it (a finished one is only evaluated again), so an ablation
stopped part-way — hours of training on a CPU — loses at most the epoch it was in.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from trainer.config import FitConfig
from trainer.evaluate import evaluate
from trainer.fit import fit

log = logging.getLogger(__name__)

TABLE_METRICS = ("ssim", "mae", "psnr", "nucleus_iou", "flagged_rate", "lbp_chi2")


def run_ablation(base: FitConfig, recipes: list[str], seeds: list[int], out: Path,
                 generators: list[str] | None = None, resume: bool = False) -> dict[str, Any]:
    """Train and evaluate every (generator, recipe, seed); returns per-run rows and the summary table."""
    runs: list[dict[str, Any]] = []
    for gen in generators or [base.model.generator]:
        for recipe in recipes:
            for seed in seeds:
                name = f"{gen}-{recipe}-s{seed}"
                cfg = base.with_overrides(model={"generator": gen}, data={"recipe": recipe},
                                          train={"seed": seed, "out": str(out / name)})
                result = fit(cfg, resume=resume and (out / name / "last.pt").exists())
                summary = evaluate(out / name / "best.pt", Path(cfg.data.path), "test").summary
                runs.append({"generator": gen, "recipe": recipe, "seed": seed, "best_epoch": result.best_epoch,
                             "gflop_per_cell": summary["gflop_per_cell"],
                             **{m: summary[m] for m in TABLE_METRICS}})
                log.info("%s: SSIM %.4f MAE %.4f nucleus IoU %.3f", name, summary["ssim"], summary["mae"],
                         summary["nucleus_iou"])
    return {"runs": runs, "table": table(runs)}


def table(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean and seed-to-seed std of :data:`TABLE_METRICS` per (generator, recipe)."""
    rows = []
    for key in dict.fromkeys((r["generator"], r["recipe"]) for r in runs):
        group = [r for r in runs if (r["generator"], r["recipe"]) == key]
        row: dict[str, Any] = {"generator": key[0], "recipe": key[1], "seeds": len(group),
                               "gflop_per_cell": group[0]["gflop_per_cell"]}
        for m in TABLE_METRICS:
            values = np.array([r[m] for r in group], np.float64)
            row[m], row[f"{m}_std"] = float(values.mean()), float(values.std(ddof=1) if len(values) > 1 else 0.0)
        rows.append(row)
    return rows


def format_table(rows: list[dict[str, Any]]) -> str:
    """The table as fixed-width text (mean ± seed std)."""
    head = f"{'generator':9s} {'recipe':12s} {'GFLOP':>6s} " + " ".join(f"{m:>17s}" for m in TABLE_METRICS)
    lines = [head]
    for r in rows:
        cells = " ".join(f"{r[m]:8.4f} ± {r[m + '_std']:6.4f}" for m in TABLE_METRICS)
        lines.append(f"{r['generator']:9s} {r['recipe']:12s} {r['gflop_per_cell']:6.2f} {cells}")
    return "\n".join(lines)
