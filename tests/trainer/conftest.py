"""Fixtures of the trainer tests: small synthetic stores whose target is learnable from the inputs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from firmware_bridge.recipes import resolve_recipe
from firmware_bridge.rigs import get_profile
from tests.support.rawscans import make_small_scan, make_stained_frames
from trainer.data.store import META_COLUMNS, DatasetWriter, StoreInfo


def _blobs(rng: np.random.Generator, p: int) -> np.ndarray:
    yy, xx = np.mgrid[:p, :p]
    img = np.zeros((p, p), np.float32)
    for _ in range(int(rng.integers(1, 3))):
        cy, cx, r = rng.uniform(p * 0.3, p * 0.7), rng.uniform(p * 0.3, p * 0.7), rng.uniform(p * 0.1, p * 0.2)
        img = np.maximum(img, ((yy - cy) ** 2 + (xx - cx) ** 2 < r * r).astype(np.float32))
    return img


def synthetic_sample(rng: np.random.Generator, n_images: int, p: int) -> tuple[np.ndarray, np.ndarray]:
    """Inputs ``(I, 3, P, P)`` and target ``(3, P, P)`` in [0, 1]; the target is a function of the inputs:
    dark discs in the unstained images ("nuclei") become purple, the rest a pale pink that follows the
    brightfield colour."""
    blob = _blobs(rng, p)
    base = rng.uniform(0.65, 0.8, (n_images, 3, 1, 1)).astype(np.float32)
    x = base - 0.4 * blob[None, None] * rng.uniform(0.8, 1.0, (n_images, 1, 1, 1)).astype(np.float32)
    x = np.clip(x + rng.normal(0, 0.01, x.shape).astype(np.float32), 0, 1)
    bf = x[0]
    y = np.stack([0.95 - 0.45 * blob, 0.85 - 0.6 * blob, 0.92 - 0.25 * blob]) + 0.5 * (bf - 0.72)
    return x, np.clip(y, 0, 1).astype(np.float32)


def _adu(v: np.ndarray) -> np.ndarray:
    return np.round(v * (4095 - 16) + 16).astype(np.uint16)


def make_store(path: Path, n: int = 40, patch: int = 32, recipe: str = "le8", seed: int = 0,
               splits: tuple[float, float] = (0.7, 0.85), hr: bool = False,
               mismatched: tuple[int, ...] = ()) -> Path:
    """Write a store of ``n`` cells (70 % train, 15 % val, 15 % test) and return its path.

    ``mismatched`` samples get another cell's target and a low alignment score (a pairing error)."""
    info = StoreInfo(resolve_recipe(recipe, get_profile("thesis-43")), patch, 12, 16, 12, 16, 0.293, hr, "synthetic")
    rng = np.random.default_rng(seed)
    pairs = [synthetic_sample(rng, len(info.recipe), patch) for _ in range(n)]
    split = [0 if i < splits[0] * n else 1 if i < splits[1] * n else 2 for i in range(n)]
    meta: dict[str, list[object]] = {c: [0] * n for c in META_COLUMNS}
    meta.update(sample_id=[f"s{i % 3}/0/{i}" for i in range(n)], slide=[f"s{i % 3}" for i in range(n)],
                cell_type=[("lymphocyte", "neutrophil")[i % 2] for i in range(n)], split=split,
                alignment_score=[0.3 if i in mismatched else 0.9 for i in range(n)], registration_score=[0.8] * n)
    targets = _adu(np.stack([pairs[(i + n // 2) % n if i in mismatched else i][1] for i in range(n)]))
    DatasetWriter(path, info).append(_adu(np.stack([x for x, _ in pairs])), targets, meta,
                                     targets_hr=targets if hr else None)
    return path


@pytest.fixture(scope="session")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 40-cell le8 store (4 images, 12 input channels), 32x32 patches."""
    return make_store(tmp_path_factory.mktemp("store") / "synth.zarr")


def write_config(path: Path, dataset: Path, out: Path, **sections: dict[str, object]) -> Path:
    """A small, fast training config as TOML (``sections`` override keys per section)."""
    base: dict[str, dict[str, object]] = {
        "data": {"path": str(dataset), "cache": True},
        "model": {"generator": "rrdb", "n_blocks": 1, "features": 8, "growth": 4},
        "loss": {"preset": "maePFNET"},
        "optim": {"batch_size": 4, "lr_g": 2e-3},
        "train": {"out": str(out), "epochs": 2, "patience": 5, "seed": 1},
    }
    for name, values in sections.items():
        base.setdefault(name, {}).update(values)
    lines = []
    for name, values in base.items():
        lines.append(f"[{name}]")
        for k, v in values.items():
            lines.append(f"{k} = " + ("true" if v is True else "false" if v is False else
                                       f'"{v}"' if isinstance(v, str) else repr(v)))
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(autouse=True)
def one_torch_thread() -> None:
    """Tiny models: one intra-op thread is fastest and leaves the machine's other core alone (reset
    before every test, as CLI calls in tests set the thread count)."""
    import torch

    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def trained(store: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``best.pt`` of a small RRDB trained for 4 epochs on :func:`store`."""
    from trainer.config import load_config
    from trainer.fit import fit

    tmp = tmp_path_factory.mktemp("trained")
    fit(load_config(write_config(tmp / "c.toml", store, tmp / "run", optim={"lr_g": 5e-3, "betas": [0.9, 0.99]},
                                 train={"epochs": 4})))
    return tmp / "run" / "best.pt"


@pytest.fixture(scope="session")
def small_scan(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small simulated raw scan (dataset-build and command tests)."""
    return make_small_scan(tmp_path_factory.getbasetemp())


@pytest.fixture(scope="session")
def stained_frames() -> list[Any]:
    """Stained frames with known white cells (WBC-finder tests)."""
    return make_stained_frames()
