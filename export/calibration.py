"""Inputs for calibration, parity checks and golden pairs: dataset samples, or synthetic stacks.

Dataset samples are what the model will see (``trainer.data.store.Dataset``, opened under the
checkpoint's recipe, normalised to [0, 1] exactly as in training). Without a dataset, synthetic
stacks stand in: per-image brightness levels with darker discs and noise, closer to PLS images than
uniform noise (which exaggerates activation ranges and int8 error).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from trainer.checkpoint import check_recipe
from trainer.data.store import Dataset

log = logging.getLogger(__name__)


def synthetic_stacks(n: int, in_channels: int, patch: int, seed: int = 0) -> NDArray[np.float32]:
    """``(n, in_channels, patch, patch)`` float32 in [0, 1]: smooth levels, dark discs ("cells"), noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:patch, :patch].astype(np.float32)
    out = np.empty((n, in_channels, patch, patch), np.float32)
    for i in range(n):
        cy, cx = rng.uniform(0.3, 0.7, 2) * patch
        r = rng.uniform(0.15, 0.3) * patch
        disc = (((yy - cy) ** 2 + (xx - cx) ** 2) < r * r).astype(np.float32)
        level = rng.uniform(0.05, 0.85, (in_channels, 1, 1)).astype(np.float32)
        contrast = rng.uniform(-0.4, 0.4, (in_channels, 1, 1)).astype(np.float32)
        noise = rng.normal(0.0, 0.02, (in_channels, patch, patch)).astype(np.float32)
        out[i] = np.clip(level + contrast * disc[None] + noise, 0.0, 1.0)
    return out


def dataset_stacks(path: Path, ckpt: dict[str, Any], n: int, split: str = "test",
                   seed: int = 0) -> tuple[NDArray[np.float32], NDArray[np.float32], float]:
    """Up to ``n`` samples of ``split`` (all samples if the split is empty): inputs, targets, pixel size (µm)."""
    ds = Dataset(Path(path), recipe=ckpt["recipe"]["id"])
    check_recipe(ckpt, ds.recipe.channel_names, str(path))
    index = ds.split_indices(split)
    if len(index) == 0:
        index = np.arange(len(ds))
    rng = np.random.default_rng(seed)
    pick = np.sort(rng.choice(index, size=min(n, len(index)), replace=False))
    x = np.stack([ds.inputs(int(i)) for i in pick]).astype(np.float32)
    y = np.stack([ds.target(int(i)) for i in pick]).astype(np.float32)
    log.info("%d %s samples of %s for calibration / golden pairs", len(pick), split, path)
    return x, y, float(ds.attrs.get("pixel_size_um", 0.293))


def batches(x: NDArray[np.float32], size: int) -> list[NDArray[np.float32]]:
    return [x[i:i + size] for i in range(0, len(x), size)]
