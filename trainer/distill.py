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

from firmware_bridge.recipes import StackRecipe, resolve_recipe
from trainer.checkpoint import generator_from_checkpoint, load_checkpoint
from trainer.config import FitConfig
from trainer.data.store import Dataset
from trainer.errors import CheckpointError

log = logging.getLogger(__name__)


class Teacher(nn.Module):
    """A frozen generator from a checkpoint plus the channel selection of the student's recipe."""

    def __init__(self, checkpoint: Path, student_recipe: str, dataset: Dataset) -> None:
        super().__init__()
        ckpt = load_checkpoint(checkpoint)
        self.recipe_id: str = ckpt["recipe"]["id"]
        self.model = generator_from_checkpoint(ckpt).requires_grad_(False)
        teacher_recipe: StackRecipe = dataset.recipe
        if list(teacher_recipe.channel_names) != list(ckpt["recipe"]["channel_names"]):
            raise CheckpointError(f"loss.teacher: dataset opened as {teacher_recipe.id!r}, the teacher needs "
                                  f"{self.recipe_id!r}")
        student = resolve_recipe(student_recipe, teacher_recipe.geometry) if student_recipe else teacher_recipe
        try:
            images = teacher_recipe.indices_of(student)
        except Exception as exc:  # RecipeError: the student wants images the teacher's stack lacks
            raise CheckpointError(f"data.recipe = {student_recipe!r} is not a sub-recipe of the teacher's "
                                  f"{self.recipe_id!r}: {exc}") from exc
        n_ch = len(teacher_recipe.geometry.channels)
        self.student_recipe = student
        self.register_buffer("channels", torch.tensor([i * n_ch + c for i in images for c in range(n_ch)]))
        self.channels: torch.Tensor

    def train(self, mode: bool = True) -> Teacher:
        super().train(mode)
        self.model.eval()  # always inference behaviour (BatchNorm statistics)
        return self

    def student_input(self, x: torch.Tensor) -> torch.Tensor:
        """The student's channels ``(B, C_s, P, P)`` of a teacher input ``(B, C_t, P, P)``."""
        return x.index_select(1, self.channels)

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


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
