"""Knowledge distillation: a trained teacher generator supervises a smaller student.

The dataset is read under the teacher's recipe; the student may use a sub-recipe of it (fewer
images, e.g. one chosen by the ablation) and gets only its own channels, sliced from the teacher's
input. The student's objective adds ``loss.distill × L1(student, teacher)`` to its usual terms.
:func:`tradeoff` trains a list of students and reports quality against cost (GFLOP and measured ms
per cell), the curve that picks the smallest model keeping the teacher's quality.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from trainer.checkpoint import generator_from_checkpoint, load_checkpoint
from trainer.config import FitConfig

log = logging.getLogger(__name__)


def ms_per_cell(model: nn.Module, in_channels: int, patch: int, batch: int = 8, repeats: int = 3) -> float:
    """Best-of wall time of a CPU forward pass, ms per cell."""
    x = torch.rand(batch, in_channels, patch, patch)
    model.eval()
    with torch.no_grad():
        model(x)
        best = min(_timed(model, x) for _ in range(repeats))
    return 1e3 * best / batch


def _timed(model: nn.Module, x: torch.Tensor) -> float:
    t0 = time.perf_counter()
    model(x)
    return time.perf_counter() - t0


def tradeoff(base: FitConfig, students: list[dict[str, Any]], out: Path) -> list[dict[str, Any]]:
    """Train each student (``model`` overrides, optionally ``recipe``) from ``base`` — which must set
    ``loss.teacher`` — and measure it on the test split; the teacher is measured too (first row)."""
    from trainer.evaluate import evaluate
    from trainer.fit import fit

    rows = [_measure("teacher", Path(base.loss.teacher), Path(base.data.path), evaluate)]
    for k, spec in enumerate(students):
        spec = dict(spec)
        recipe = spec.pop("recipe", base.data.recipe)
        name = f"student{k}-" + "-".join(f"{a}{b}" for a, b in sorted(spec.items()))
        cfg = base.with_overrides(model=spec, data={"recipe": recipe}, train={"out": str(out / name)})
        fit(cfg)
        rows.append(_measure(name, out / name / "best.pt", Path(base.data.path), evaluate))
    teacher = rows[0]
    for r in rows:
        r["ssim_drop"] = teacher["ssim"] - r["ssim"]
        r["flop_fraction"] = r["gflop_per_cell"] / teacher["gflop_per_cell"]
    return rows


def _measure(name: str, checkpoint: Path, dataset: Path, evaluate: Any) -> dict[str, Any]:
    ckpt = load_checkpoint(checkpoint)
    s = evaluate(checkpoint, dataset, "test").summary
    spec = ckpt["model"]
    ms = ms_per_cell(generator_from_checkpoint(ckpt), spec["in_channels"], spec["patch_size"])
    log.info("%s: %.3f GFLOP, %.2f ms/cell, SSIM %.4f", name, spec["gflop_per_cell"], ms, s["ssim"])
    return {"model": name, "recipe": ckpt["recipe"]["id"], "gflop_per_cell": spec["gflop_per_cell"],
            "ms_per_cell": ms, "ssim": s["ssim"], "mae": s["mae"], "nucleus_iou": s["nucleus_iou"],
            "flagged_rate": s["flagged_rate"]}
