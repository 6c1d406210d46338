"""How much of the stain can a *converged linear* read-out recover from each recipe's images?

    python docs/results/linear_probe.py --dataset out/results/data-hr.zarr \
        --recipes brightfield,le8,le18 [--target 20x|hr] [--json]

Ridge regression from the ``k x k`` neighbourhood of every input channel of a pixel to the target's
RGB at that pixel, fitted in closed form on pixels sampled from train-split cells and scored (MAE)
on test-split cells. No training budget is involved, so a lower error for a recipe means its images
hold information a linear model can read — a floor for what a CNN could extract, separate from how
fast a given CNN learns to.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from trainer.data.store import Dataset


def _samples(ds: Dataset, split: str, cells: int, per_cell: int, k: int, hr: bool,
             rng: np.random.Generator) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    r = k // 2
    xs_all, ys_all = [], []
    for i in ds.split_indices(split)[:cells]:
        x, y = ds.inputs(int(i)), ds.target(int(i), hr=hr)
        p = x.shape[-1]
        rows, cols = rng.integers(r, p - r, per_cell), rng.integers(r, p - r, per_cell)
        patches = np.stack([x[:, rows + dy, cols + dx] for dy in range(-r, r + 1) for dx in range(-r, r + 1)], 1)
        xs_all.append(patches.transpose(2, 0, 1).reshape(per_cell, -1))
        ys_all.append(y[:, rows, cols].T)
    return np.concatenate(xs_all).astype(np.float64), np.concatenate(ys_all).astype(np.float64)


def probe(path: Path, recipe: str, hr: bool, k: int = 5, ridge: float = 1.0, seed: int = 0) -> dict[str, Any]:
    """Test MAE of the ridge read-out of ``recipe``'s images (train: 400 cells x 150 px; test: 225 x 300)."""
    ds = Dataset(path, recipe=recipe)
    rng = np.random.default_rng(seed)
    x_tr, y_tr = _samples(ds, "train", 400, 150, k, hr, rng)
    x_te, y_te = _samples(ds, "test", 225, 300, k, hr, rng)
    mu, sd = x_tr.mean(0), x_tr.std(0) + 1e-6
    a = np.c_[(x_tr - mu) / sd, np.ones(len(x_tr))]
    w = np.linalg.solve(a.T @ a + ridge * np.eye(a.shape[1]), a.T @ y_tr)
    pred = np.c_[(x_te - mu) / sd, np.ones(len(x_te))] @ w
    return {"recipe": recipe, "dataset": path.name, "target": "hr" if hr else "20x", "features": int(x_tr.shape[1]),
            "train_mae": float(np.abs(a @ w - y_tr).mean()), "test_mae": float(np.abs(pred - y_te).mean())}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", type=Path, required=True)
    p.add_argument("--recipes", default="brightfield,le8,le18")
    p.add_argument("--target", choices=("20x", "hr"), default="20x")
    p.add_argument("--neighbourhood", type=int, default=5, help="k of the k x k neighbourhood (odd)")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    if args.neighbourhood < 1 or args.neighbourhood % 2 == 0:
        p.error(f"--neighbourhood must be an odd number >= 1, got {args.neighbourhood}")
    rows = [probe(args.dataset, r, args.target == "hr", args.neighbourhood) for r in args.recipes.split(",")]
    if args.json:
        print(json.dumps({"rows": rows}))
    else:
        for r in rows:
            print(f"{r['recipe']:12s} {r['target']:4s} features {r['features']:5d}  test MAE {r['test_mae']:.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
