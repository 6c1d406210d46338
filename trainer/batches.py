"""Feeding the dataset store to torch: paired samples, the split check and deterministic epoch batches."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray

from core.config import ConfigError
from trainer.data.store import Dataset


class PairedCells(torch.utils.data.Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """``(inputs (I·3, P, P), target (3, P, P))`` float32 in [0, 1] for the store rows ``indices``."""

    def __init__(self, ds: Dataset, indices: NDArray[np.int64], hr: bool = False, cache: bool = False) -> None:
        self.ds, self.indices, self.hr = ds, np.asarray(indices), hr
        self._cache: list[tuple[torch.Tensor, torch.Tensor]] | None = None
        if cache:
            self._cache = [self._read(i) for i in range(len(self.indices))]

    def _read(self, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        i = int(self.indices[k])
        return torch.from_numpy(self.ds.inputs(i)), torch.from_numpy(self.ds.target(i, hr=self.hr))

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self._cache[k] if self._cache is not None else self._read(k)


def channel_stats(cells: PairedCells, max_samples: int = 512) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and std ``(C,)`` of the inputs over up to ``max_samples`` evenly spaced cells."""
    picks = np.unique(np.linspace(0, len(cells) - 1, min(len(cells), max_samples)).round().astype(int))
    x = torch.stack([cells[int(k)][0] for k in picks]).double()
    return x.mean(dim=(0, 2, 3)).float(), x.std(dim=(0, 2, 3)).float()


def split_or_fail(ds: Dataset, split: str, key: str = "data.path") -> NDArray[np.int64]:
    """The rows of ``split``; a clear error when the split is empty."""
    idx = ds.split_indices(split)
    if len(idx) == 0:
        counts = {s: len(ds.split_indices(s)) for s in ("train", "val", "test")}
        raise ConfigError(f"{key}: {ds.path} has no {split!r} samples (splits: {counts}); "
                          "rebuild the dataset with a non-empty split")
    return idx


def epoch_batches(n: int, batch_size: int, seed: int, epoch: int, rank: int = 0, world: int = 1,
                  max_steps: int = 0) -> list[list[int]]:
    """This rank's share of each global batch of epoch ``epoch`` (positions in ``range(n)``).

    The permutation depends only on ``(seed, epoch)``, so a resumed run sees the same batches; every
    global batch of ``batch_size`` is split ``[rank::world]`` so DDP averages to the same gradient as
    one process. The last partial batch is dropped unless it is the only one.
    """
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    perm = torch.randperm(n, generator=g).tolist()
    n_full = n // batch_size
    batches = [perm[i * batch_size:(i + 1) * batch_size] for i in range(n_full)] or [perm]
    if max_steps:
        batches = batches[:max_steps]
    return [b[rank::world] for b in batches]


def collate(ds: PairedCells, positions: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack samples ``positions`` into ``(B, I·3, P, P)``, ``(B, 3, P, P)``."""
    return stack_pairs([ds[k] for k in positions])


def loader(ds: PairedCells, batches: list[list[int]], workers: int) -> Any:
    """Iterate ``batches`` (lists of positions) in order, reading with ``workers`` processes (0 = inline).

    Workers start from a fork server, a clean process, not by forking this one: a process that has run
    inference or served sockets holds threads (OpenMP, OpenVINO, ZeroMQ) whose locks a fork copies
    mid-use, and such a fork can crash."""
    if workers == 0:
        return (collate(ds, b) for b in batches)
    return torch.utils.data.DataLoader(ds, batch_sampler=batches, num_workers=workers, collate_fn=stack_pairs,
                                       multiprocessing_context="forkserver")


def stack_pairs(items: list[tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack ``(input, target)`` samples into ``(B, I·3, P, P)``, ``(B, 3, P, P)``."""
    return torch.stack([a for a, _ in items]), torch.stack([b for _, b in items])
