"""The distillation teacher: a frozen generator whose outputs supervise a student (:mod:`trainer.distill`)."""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from torch import nn

from firmware_bridge.recipes import StackRecipe, resolve_recipe
from trainer.checkpoint import generator_from_checkpoint, load_checkpoint
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
