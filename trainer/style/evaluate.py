"""``stainless-train eval-style``: a trained style on a folder of A images, against B (optionally paired).

With ``paired``, ``b`` holds the *same* cells as ``a`` in the target style under the same file names
(``stainless-train style-cells --also``): the output is then also scored against that truth.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from trainer.errors import TrainerError
from trainer.style.data import IMAGE_SUFFIXES, centre_crops, read_folder
from trainer.style.measure import before_after_strip, change_image, paired_scores, save_strip, style_report
from trainer.style.models import load_style_checkpoint, style_generator_from_checkpoint


def _names(folder: Path) -> list[str]:
    return sorted(p.name for p in Path(folder).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def evaluate_style(checkpoint: Path, a: Path, b: Path, paired: bool = False, strip: Path | None = None,
                   batch: int = 16) -> dict[str, Any]:
    """Style every image of ``a`` (centre crops of the checkpoint's patch size); colour shift toward
    ``b``, nucleus IoU before/after, and with ``paired`` SSIM / MAE against ``b``'s same cells.
    ``strip``: a PNG with rows A, output, B, the change ×8 around grey and (paired) the true change ×8."""
    ckpt = load_style_checkpoint(checkpoint)
    g = style_generator_from_checkpoint(ckpt)
    patch = int(ckpt["model"]["patch_size"])
    if paired and _names(a) != _names(b):
        raise TrainerError(f"--paired: {a} and {b} must hold the same file names (style-cells --also)")
    xa = centre_crops(read_folder(a, int(ckpt["model"]["in_channels"]), patch), patch)
    xb = centre_crops(read_folder(b, 3, patch), patch).numpy()
    with torch.no_grad():
        out = np.concatenate([g(xa[i:i + batch]).numpy() for i in range(0, len(xa), batch)])
    an = xa.numpy()
    report: dict[str, Any] = {"style": ckpt["style"], "checkpoint": str(checkpoint), "cells": len(an),
                              **style_report(an, out, xb)}
    if paired:
        report.update(paired_scores(an, out, xb))
    if strip is not None and an.shape[1] == 3:  # rows: A, output, B, change x8 (and the true change x8)
        rows = [an, out, xb, change_image(an, out)] + ([change_image(an, xb)] if paired else [])
        save_strip(strip, before_after_strip(rows))
    return report
