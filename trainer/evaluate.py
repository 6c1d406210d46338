"""``stainless-train evaluate``: metrics of a checkpoint on a dataset split, per cell type, with a report.

Per sample: SSIM, PSNR, MAE, Fourier distance, LBP chi-squared (:mod:`trainer.metrics`) and nucleus
fidelity (:mod:`trainer.nucleus`: IoU, nuclear components added / removed, flagged). The summary holds
means (and standard deviations) over the split, the rate of flagged samples, and the same per cell
type when the dataset knows the types. :func:`trainer.report.write_report` turns it into HTML + PNG.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from torch import nn

from firmware_bridge.errors import RecipeError
from trainer.checkpoint import check_recipe, generator_from_checkpoint, load_checkpoint
from trainer.data.store import Dataset
from trainer.errors import CheckpointError
from trainer.metrics import image_metrics
from trainer.nucleus import nucleus_fidelity
from trainer.vgg import VGGFeatures

log = logging.getLogger(__name__)

#: Per-sample columns besides ``sample_id`` / ``cell_type`` / ``index``.
SAMPLE_COLUMNS = ("ssim", "psnr", "mae", "fourier", "lbp_chi2", "nucleus_iou", "n_target", "n_pred", "added",
                  "removed", "flagged")


@dataclass
class Evaluation:
    """Per-sample rows and the summary; ``model`` / ``dataset`` are kept for the report's galleries."""

    summary: dict[str, Any]
    samples: list[dict[str, Any]]
    model: nn.Module
    dataset: Dataset
    hr: bool

    def predict(self, index: int) -> NDArray[np.float32]:
        """Prediction ``(3, P, P)`` for store row ``index``."""
        with torch.no_grad():
            x = torch.from_numpy(self.dataset.inputs(index))[None]
            return self.model(x)[0].numpy()


def open_for_checkpoint(ckpt: dict[str, Any], dataset: Path) -> Dataset:
    """Open ``dataset`` under the checkpoint's recipe, or explain why it cannot serve it."""
    try:
        ds = Dataset(dataset, recipe=ckpt["recipe"]["id"])
    except RecipeError as exc:
        raise CheckpointError(f"{dataset} cannot provide the checkpoint's recipe {ckpt['recipe']['id']!r}: {exc}") \
            from exc
    check_recipe(ckpt, ds.recipe.channel_names, str(dataset))
    return ds


def _batches(ds: Dataset, indices: NDArray[np.int64], size: int) -> Iterator[tuple[NDArray[np.int64], torch.Tensor]]:
    for start in range(0, len(indices), size):
        chunk = indices[start:start + size]
        yield chunk, torch.from_numpy(np.stack([ds.inputs(int(i)) for i in chunk]))


def _vgg_of(ckpt: dict[str, Any], vgg_weights: Path | None) -> VGGFeatures | None:
    """The perceptual network when weights are given or the training's file is still there."""
    loss = ckpt["config"]["loss"]
    path = vgg_weights or (Path(loss["vgg_weights"]) if loss.get("vgg_weights") else None)
    if path is None or (vgg_weights is None and not path.is_file()):
        return None
    return VGGFeatures(path, loss.get("vgg_layer", "block4_conv4"))


def _vgg_distance(vgg: VGGFeatures, pred: torch.Tensor, target: torch.Tensor) -> NDArray[np.float64]:
    return (vgg(pred) - vgg(target)).abs().flatten(1).mean(1).double().numpy()


def evaluate(checkpoint: Path, dataset: Path, split: str = "test", hr: bool | None = None,
             batch_size: int = 32, vgg_weights: Path | None = None) -> Evaluation:
    """Predict every sample of ``split`` (or ``"all"``) and measure it against its target (100x if ``hr``).

    The VGG feature distance (column ``vgg``) is added when ``vgg_weights`` is given or the file the
    checkpoint was trained with exists."""
    ckpt = load_checkpoint(checkpoint)
    model = generator_from_checkpoint(ckpt)
    ds = open_for_checkpoint(ckpt, dataset)
    use_hr = bool(ckpt["config"]["data"]["use_hr_target"]) if hr is None else hr
    indices = np.arange(len(ds)) if split == "all" else ds.split_indices(split)
    if len(indices) == 0:
        raise CheckpointError(f"{dataset} has no {split!r} samples; choose another --split")
    rows: list[dict[str, Any]] = []
    vgg = _vgg_of(ckpt, vgg_weights)
    with torch.no_grad():
        for chunk, x in _batches(ds, indices, batch_size):
            pred = model(x)
            for i, p in zip(chunk, pred.numpy(), strict=True):
                rows.append(_sample_row(ds, int(i), p, use_hr))
            if vgg is not None:
                targets = torch.from_numpy(np.stack([ds.target(int(i), hr=use_hr) for i in chunk]))
                for row, d in zip(rows[-len(chunk):], _vgg_distance(vgg, pred, targets), strict=True):
                    row["vgg"] = float(d)
    log.info("evaluated %d %s samples of %s", len(rows), split, dataset)
    summary = {"checkpoint": str(checkpoint), "dataset": str(dataset), "split": split, "hr_target": use_hr,
               "recipe": ckpt["recipe"]["id"], "generator": ckpt["model"]["generator"],
               "gflop_per_cell": ckpt["model"].get("gflop_per_cell"), "epoch": ckpt["epoch"],
               **summarise(rows), "by_cell_type": by_cell_type(rows)}
    return Evaluation(summary, rows, model, ds, use_hr)


def _sample_row(ds: Dataset, i: int, pred: NDArray[np.float32], hr: bool) -> dict[str, Any]:
    target = ds.target(i, hr=hr)
    row: dict[str, Any] = {"index": i, "sample_id": str(ds.meta["sample_id"][i]),
                           "cell_type": str(ds.meta["cell_type"][i])}
    row.update(image_metrics(pred, target))
    row.update(nucleus_fidelity(np.moveaxis(pred, 0, -1), np.moveaxis(target, 0, -1)))
    return row


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Means and standard deviations of the metrics, plus nucleus counts and the flagged rate."""
    out: dict[str, Any] = {"n": len(rows)}
    for col in ("ssim", "psnr", "mae", "fourier", "lbp_chi2", "nucleus_iou", "vgg"):
        if rows and col not in rows[0]:
            continue
        values = np.array([r[col] for r in rows], np.float64)
        out[col] = float(values.mean()) if len(values) else float("nan")
        out[f"{col}_std"] = float(values.std()) if len(values) else float("nan")
    for col in ("added", "removed", "flagged"):
        out[f"nuclei_{col}" if col != "flagged" else "flagged"] = int(sum(r[col] for r in rows))
    out["flagged_rate"] = out["flagged"] / len(rows) if rows else float("nan")
    out["added_per_cell"] = out["nuclei_added"] / len(rows) if rows else float("nan")
    out["removed_per_cell"] = out["nuclei_removed"] / len(rows) if rows else float("nan")
    return out


def by_cell_type(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """:func:`summarise` per known cell type (samples with an empty type are left out)."""
    types = sorted({r["cell_type"] for r in rows if r["cell_type"]})
    return {t: summarise([r for r in rows if r["cell_type"] == t]) for t in types}
